package main

import (
	"context"
	goflag "flag"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/fleetpulse/fleetpulse/hub"
)

func newHubCommand() *cobra.Command {
	cfg := hub.DefaultConfig()
	cmd := &cobra.Command{
		Use:   "hub",
		Short: "Run the Fleetpulse hub",
		Long: `Run the Fleetpulse hub.

Agents write over mutual TLS to --agents.listen-address (remote write at
/api/v1/write); each cluster's series are stamped cluster="<name>" from the
agent's client certificate and stored in the TSDB shard its name hashes to. Users' tools use
--http.listen-address: the Prometheus HTTP API at /api/v1 (a Grafana Prometheus
datasource, promtool, client_golang), /metrics, /-/healthy and /-/ready.
SIGINT or SIGTERM shut it down gracefully; the WAL keeps every acknowledged
sample across a crash.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			logger := slog.Default().With("component", "hub")
			h, err := hub.New(cfg, logger)
			if err != nil {
				return err
			}
			go reloadOnSIGHUP(cmd.Context(), h, logger)
			return h.Run(cmd.Context())
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfg.HTTPListenAddress, "http.listen-address", cfg.HTTPListenAddress, "address for the Prometheus API and the operational endpoints")
	f.StringVar(&cfg.Web.ConfigFile, "web.config.file", "", "exporter-toolkit web configuration (TLS, client certificates, basic auth; the file Prometheus takes) for --http.listen-address; empty serves plain HTTP without authentication")
	f.BoolVar(&cfg.Web.EnableLifecycle, "web.enable-lifecycle", false, "serve POST /-/reload (rules and limits are reloaded on SIGHUP either way)")
	f.BoolVar(&cfg.Web.EnablePprof, "web.enable-pprof", false, "serve Go's profiles at /debug/pprof/")
	f.IntVar(&cfg.Web.MaxConnections, "web.max-connections", cfg.Web.MaxConnections, "users' connections open at once; more wait to be accepted")
	f.IntVar(&cfg.Web.MaxConnectionsPerSource, "web.max-connections-per-source", cfg.Web.MaxConnectionsPerSource, "users' connections open at once from one client address; more are refused (429)")
	f.DurationVar(&cfg.Web.ReadTimeout, "web.read-timeout", cfg.Web.ReadTimeout, "longest time to read a users' request")
	f.DurationVar(&cfg.Web.IdleTimeout, "web.idle-timeout", cfg.Web.IdleTimeout, "users' keep-alive connections idle this long are closed")
	f.StringVar(&cfg.Web.ExternalURL, "web.external-url", "", "URL users reach the hub at, which alerts link back to (default: http(s)://<listen address, or the host name when it listens on all>)")
	f.StringVar(&cfg.Web.GrafanaURL, "web.grafana-url", "", "Grafana that alerts' links (/graph) open in Explore; empty: they answer from the query API")
	f.StringVar(&cfg.Web.GrafanaDatasource, "web.grafana-datasource", "", "UID of the hub's datasource in --web.grafana-url")
	f.StringVar(&cfg.GRPCListenAddress, "grpc.listen-address", "", "address for Thanos's gRPC StoreAPI over the hub's TSDBs and bucket, for thanos query, and with peers the Rules API they read each other's alerts through; empty turns it off")
	f.StringVar(&cfg.GRPCTLS.CertFile, "grpc.tls-cert-file", "", "certificate of the StoreAPI listener (PEM); empty serves plain gRPC")
	f.StringVar(&cfg.GRPCTLS.KeyFile, "grpc.tls-key-file", "", "key of --grpc.tls-cert-file (PEM)")
	f.StringVar(&cfg.GRPCTLS.ClientCAFile, "grpc.tls-client-ca-file", "", "CA whose client certificates the StoreAPI requires; empty lets any client read every cluster's series")
	f.StringVar(&cfg.GRPCAdvertiseAddress, "grpc.advertise-address", "", "StoreAPI address the other replicas reach this one at, as --query.peer lists it (default: --grpc.listen-address, with the host name for one on every interface)")
	f.StringArrayVar(&cfg.QueryPeers, "query.peer", nil, "StoreAPI address (host:port) of a hub replica, this one's included or not; repeatable. The replica's /api/v1 and rules then read the whole fleet, and the replicas split the clusters for rule results and alerts")
	f.StringVar(&cfg.PeerTLS.CAFile, "query.peer-tls-ca-file", "", "CA of the peers' StoreAPI certificates; empty connects over plain gRPC")
	f.StringVar(&cfg.PeerTLS.CertFile, "query.peer-tls-cert-file", "", "client certificate for peers whose StoreAPI requires one (PEM)")
	f.StringVar(&cfg.PeerTLS.KeyFile, "query.peer-tls-key-file", "", "key of --query.peer-tls-cert-file (PEM)")
	f.StringVar(&cfg.PeerTLS.ServerName, "query.peer-tls-server-name", "", "name the peers' certificates are checked for (default: the peer address's host)")
	f.DurationVar(&cfg.PeerRefreshInterval, "query.peer-refresh-interval", cfg.PeerRefreshInterval, "how often the peers are listed and asked whether they answer")
	f.StringVar(&cfg.Store.Replica, "replica.name", "", "this replica's name among the hub's replicas (stable and unique: the pod name); its blocks and StoreAPI series carry it as --replica.label, and queries deduplicate by it. Empty: one hub, no replica label")
	f.StringVar(&cfg.Store.ReplicaLabel, "replica.label", cfg.Store.ReplicaLabel, "external label that names the replica (give it to thanos query as --query.replica-label and thanos compact as --deduplication.replica-label)")
	f.StringVar(&cfg.AgentListenAddress, "agents.listen-address", cfg.AgentListenAddress, "HTTPS address for agents (mutual TLS); empty turns it off")
	f.StringVar(&cfg.AgentTLS.CertFile, "agents.tls-cert-file", "", "certificate of the agent listener (PEM)")
	f.StringVar(&cfg.AgentTLS.KeyFile, "agents.tls-key-file", "", "key of the agent listener (PEM)")
	f.StringVar(&cfg.AgentTLS.ClientCAFile, "agents.client-ca-file", "", "CA that signs agents' client certificates; the certificate's common name is the cluster's name")
	f.StringVar(&cfg.AgentTLS.ClientCAKeyFile, "agents.client-ca-key-file", "", "key of --agents.client-ca-file; registration signs agents' certificates with it")
	f.DurationVar(&cfg.AgentHandshakeTimeout, "agents.handshake-timeout", cfg.AgentHandshakeTimeout, "time a new agent connection has for its TLS handshake and request headers before it is closed")
	f.IntVar(&cfg.AgentMaxConnections, "agents.max-connections", 0, "agent connections open at once; more wait to be accepted (0: the open-file limit less what the TSDBs and other connections need)")
	f.StringVar(&cfg.ControlPlaneKubeconfig, "control-plane.kubeconfig", "", "kubeconfig of the hub's Kubernetes control plane, or \"in-cluster\" for the pod's service account; turns registration on (ManagedClusters, bootstrap tokens)")
	f.BoolVar(&cfg.ControlPlane.LeaderElect, "controllers.leader-elect", cfg.ControlPlane.LeaderElect, "elect one hub replica over a Lease on the control plane (fleetpulse-hub-controllers in --registration.namespace) to run the controllers; the gateways serve on every replica. Off, every hub runs every controller: one replica only")
	f.DurationVar(&cfg.ControlPlane.LeaseDuration, "controllers.leader-elect.lease-duration", cfg.ControlPlane.LeaseDuration, "how long the controllers' Lease holds without renewal: the longest the controllers stop when their leader dies")
	f.DurationVar(&cfg.ControlPlane.RenewDeadline, "controllers.leader-elect.renew-deadline", cfg.ControlPlane.RenewDeadline, "how long the leader retries renewing its Lease before it stops leading (and the hub exits)")
	f.DurationVar(&cfg.ControlPlane.RetryPeriod, "controllers.leader-elect.retry-period", cfg.ControlPlane.RetryPeriod, "how often replicas try to acquire or renew the controllers' Lease")
	f.StringVar(&cfg.Registration.Namespace, "registration.namespace", cfg.Registration.Namespace, "namespace of bootstrap tokens and ClusterProfiles on the control plane")
	f.DurationVar(&cfg.Registration.CertificateTTL, "registration.certificate-ttl", cfg.Registration.CertificateTTL, "lifetime of agents' client certificates (agents renew at 80%)")
	f.IntVar(&cfg.Registration.GracePeriods, "registration.grace-periods", cfg.Registration.GracePeriods, "heartbeat periods a cluster may miss before it is Unknown and tainted unreachable")
	f.Int32Var(&cfg.Registration.DefaultHeartbeatPeriodSeconds, "registration.heartbeat-period-seconds", cfg.Registration.DefaultHeartbeatPeriodSeconds, "heartbeat period given to newly registered clusters")
	f.DurationVar(&cfg.Registration.InventoryInterval, "registration.inventory-interval", cfg.Registration.InventoryInterval, "how often clusters' status is refreshed from their inventory telemetry")
	f.DurationVar(&cfg.Registration.RefreshInterval, "registration.refresh-interval", cfg.Registration.RefreshInterval, "how often a heartbeating cluster whose state does not change has its Lease and status.lastHeartbeatTime written")
	f.Float64Var(&cfg.Registration.RegisterRatePerSource, "registration.rate-per-source", cfg.Registration.RegisterRatePerSource, "refused registration calls (bad or missing bootstrap tokens) allowed per second per source address (IPv6 per /64); over it every registration call from there is answered 429 until the budget refills; successful calls cost nothing. 0: no limit")
	f.IntVar(&cfg.Registration.RegisterBurstPerSource, "registration.burst-per-source", cfg.Registration.RegisterBurstPerSource, "refused registration calls a source address may make at once before --registration.rate-per-source applies")
	f.IntVar(&cfg.EventCapacity, "events.capacity", cfg.EventCapacity, "Kubernetes events kept (newest first), served at /api/v1/events")
	f.Int64Var(&cfg.MaxRequestBytes, "agents.max-request-bytes", cfg.MaxRequestBytes, "largest agent request body accepted")
	f.StringVar(&cfg.IngestLimitsFile, "ingest.limits-config-file", "", "YAML of the clusters' remote-write limits (label name and value length, labels per series, series, samples and decompressed bytes per request, head series, request rate): \"default: {...}\" and \"clusters: {<name>: {...}}\"; reloaded with the configuration; empty: the built-in defaults")
	f.StringVar(&cfg.Store.Dir, "storage.tsdb.path", cfg.Store.Dir, "folder of the TSDBs (in its folder shards)")
	f.IntVar(&cfg.Store.Shards, "storage.tsdb.shards", cfg.Store.Shards, "how many TSDBs the clusters' series are spread over, by a hash of the cluster name (1 to 1024); each holds a head, a WAL and a few open files")
	f.DurationVar(&cfg.Store.Retention, "storage.tsdb.retention.time", cfg.Store.Retention, "how long local blocks are kept")
	f.DurationVar(&cfg.Store.BlockDuration, "storage.tsdb.block-duration", cfg.Store.BlockDuration, "length of the blocks cut from the head")
	f.DurationVar(&cfg.Store.OutOfOrderWindow, "storage.tsdb.out-of-order-window", cfg.Store.OutOfOrderWindow, "how much older than a series' newest sample a sample may be (agents replaying their queue)")
	f.StringVar(&cfg.Store.BucketDir, "storage.bucket.path", "", "filesystem bucket that blocks are shipped to and read back from (shorthand for a FILESYSTEM --storage.bucket.config-file); empty ships nothing")
	f.StringVar(&cfg.Store.BucketConfigFile, "storage.bucket.config-file", "", "Thanos object-storage bucket config (YAML: type: S3|FILESYSTEM|GCS|AZURE|..., config: {...}) that blocks are shipped to and read back from; its content is never logged")
	f.DurationVar(&cfg.Store.BucketSyncInterval, "storage.bucket.sync-interval", cfg.Store.BucketSyncInterval, "how often the bucket's block list is read again, so that queries read newly shipped blocks")
	f.DurationVar(&cfg.Query.LookbackDelta, "query.lookback-delta", cfg.Query.LookbackDelta, "how far back an instant query looks for a sample")
	f.DurationVar(&cfg.Query.Timeout, "query.timeout", cfg.Query.Timeout, "longest a query may run")
	f.IntVar(&cfg.Query.MaxSamples, "query.max-samples", cfg.Query.MaxSamples, "most samples a query may load")
	f.IntVar(&cfg.Query.MaxConcurrency, "query.max-concurrency", cfg.Query.MaxConcurrency, "queries run at once (users' and rules'); more wait their turn")
	f.IntVar(&cfg.Query.RemoteReadSampleLimit, "storage.remote.read-sample-limit", cfg.Query.RemoteReadSampleLimit, "most samples one remote read request may return (0: no limit)")
	f.IntVar(&cfg.Query.RemoteReadConcurrency, "storage.remote.read-concurrent-limit", cfg.Query.RemoteReadConcurrency, "remote read requests served at once")
	f.StringArrayVar(&cfg.Alerting.RuleFiles, "rules.file", nil, "Prometheus rule files (globs) to evaluate besides the shipped packs; repeatable")
	f.BoolVar(&cfg.NoShippedRules, "rules.no-shipped", false, "do not load the shipped rule packs")
	f.DurationVar(&cfg.Alerting.EvaluationInterval, "rules.evaluation-interval", cfg.Alerting.EvaluationInterval, "how often rules are evaluated")
	f.StringArrayVar(&cfg.Alerting.AlertmanagerURLs, "alertmanager.url", nil, "Alertmanager to send alerts to (http://host:port); repeatable")
	f.StringToStringVar(&cfg.Alerting.ExternalLabels, "alerting.external-label", nil, "label added to every alert sent (name=value); repeatable")
	// The ring's flags under dskit's names, registered by dskit's own
	// RegisterFlags where it has them (memberlist's).
	ringFlags := goflag.NewFlagSet("ring", goflag.ContinueOnError)
	cfg.Ring.RegisterFlags(ringFlags)
	f.AddGoFlagSet(ringFlags)
	f.StringVar(&cfg.Replication.CertFile, "replication.tls-cert-file", "", "this replica's client certificate (PEM), issued by the replication CA, with which it sends its clusters' writes to their other owners; needed at --ring.replication-factor above 1")
	f.StringVar(&cfg.Replication.KeyFile, "replication.tls-key-file", "", "key of --replication.tls-cert-file (PEM)")
	f.StringVar(&cfg.Replication.CAFile, "replication.tls-ca-file", "", "CA of the other replicas' agents' serving certificates, which replicated writes are sent to; empty: the system's roots")
	f.StringVar(&cfg.Replication.ServerName, "replication.tls-server-name", "", "name the other replicas' serving certificates are checked for (default: the host of their address in the ring)")
	f.StringVar(&cfg.Replication.ClientCAFile, "replication.tls-client-ca-file", "", "replication CA: the agents' port takes replicated writes (for clusters this replica owns) only from client certificates it issued; it must not be the agents' CA. Empty: none are taken")
	f.DurationVar(&cfg.Replication.Timeout, "replication.timeout", cfg.Replication.Timeout, "longest a replicated write to another owner may take before it counts as failed")
	f.DurationVar(&cfg.ShutdownTimeout, "shutdown-timeout", cfg.ShutdownTimeout, "time allowed for a graceful shutdown")
	cmd.AddCommand(newHubInstallCommand(), newHubTokenCommand(), newHubAcceptCommand())
	return cmd
}

// reloadOnSIGHUP reloads the hub's rules on SIGHUP, as Prometheus does; a
// bad file keeps the loaded rules.
func reloadOnSIGHUP(ctx context.Context, h *hub.Hub, logger *slog.Logger) {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	for {
		select {
		case <-ctx.Done():
			return
		case <-hup:
			if err := h.Reload(); err != nil {
				logger.Error("reload failed; the loaded configuration stays", "err", err)
			} else {
				logger.Info("reloaded on SIGHUP")
			}
		}
	}
}
