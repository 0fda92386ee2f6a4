package e2e

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/fleetpulse/fleetpulse/hub/controlplane"
	"github.com/fleetpulse/fleetpulse/hub/metricstore"
	"github.com/fleetpulse/fleetpulse/hub/registration"
	"github.com/fleetpulse/fleetpulse/test/bench/fleetsim"
	"github.com/fleetpulse/fleetpulse/testbed"
)

// replicaRules fire one alert per cluster for as long as it reports. At
// replication factor 1 a killed owner's samples are unreadable until it
// restarts, so between the ring forgetting it and the cluster's first
// write at its new owner the expression finds nothing: keep_firing_for
// bridges that gap, as a rule over a cluster's own series needs to.
const replicaRules = `groups:
  - name: replicas
    rules:
      - alert: FleetClusterReporting
        expr: count by (cluster) (k8s_cluster_info) > 0
        keep_firing_for: 30s
`

// ringFleetOptions shape a ringFleet.
type ringFleetOptions struct {
	name string
	// replicationFactor is --ring.replication-factor; above 1 each replica
	// gets a client certificate of a replication CA of its own.
	replicationFactor int
	// reals are the test-bed clusters running the real agent; sims the
	// simulated clusters.
	reals, sims int
}

// ringFleet is three running `fleetpulse hub` replicas (and a fourth, not
// started) in a ring over memberlist on loopback, leader-elected on one
// test-bed control plane, with real agents on test-bed clusters and
// simulated clusters reaching them through one balanced address, a real
// Alertmanager and a stock thanos query over every replica's StoreAPI.
type ringFleet struct {
	set        *replicaSet
	three      []*replica
	lb         *balancer
	thanosURL  string
	amURL      string
	hook       *webhook
	kube       client.Client
	fleet      *fleetsim.Fleet
	fleetStart time.Time
	realNames  []string
	clusters   int
}

func startRingFleet(t *testing.T, o ringFleetOptions) *ringFleet {
	t.Helper()
	ctx := context.Background()
	thanos := testbed.ThanosBinary(t)
	hubBin, agentBin := buildBinary(t, "fleetpulse"), buildBinary(t, "fleetpulse-agent")
	cp := testbed.StartClusters(t, o.name+"hub", 1, testbed.ClusterOptions{ControlPlaneOnly: true})[0]
	reals := testbed.StartClusters(t, o.name, o.reals, testbed.ClusterOptions{Nodes: 1})
	f := &ringFleet{clusters: o.reals + o.sims}

	var hookURL string
	f.hook, hookURL = newWebhook(t)
	f.amURL = startAlertmanagerWith(t, "route:\n  receiver: hook\n  group_by: [alertname, cluster]\n  group_wait: 0s\n"+
		"  group_interval: 1s\n  repeat_interval: 1h\nreceivers:\n  - name: hook\n    webhook_configs:\n"+
		"      - url: "+hookURL+"\n        send_resolved: true\n")
	rules := filepath.Join(t.TempDir(), "replicas.yaml")
	if err := os.WriteFile(rules, []byte(replicaRules), 0o644); err != nil {
		t.Fatal(err)
	}
	ca := testbed.NewCA(t, o.name+"-agents")
	cert, key := ca.Server("hub") // localhost and 127.0.0.1: every replica's --ring.instance-addr
	f.set = newReplicaSet(t, hubBin, 4, []string{
		"--agents.tls-cert-file=" + cert, "--agents.tls-key-file=" + key,
		"--agents.client-ca-file=" + ca.CertFile, "--agents.client-ca-key-file=" + ca.KeyFile,
		"--control-plane.kubeconfig=" + cp.KubeconfigPath,
		"--controllers.leader-elect.lease-duration=" + leaseDuration.String(),
		"--controllers.leader-elect.renew-deadline=" + renewDeadline.String(),
		"--controllers.leader-elect.retry-period=" + retryPeriod.String(),
		fmt.Sprintf("--registration.heartbeat-period-seconds=%d", int(agentHeartbeat.Seconds())),
		"--registration.grace-periods=4",
		"--rules.no-shipped", "--rules.file=" + rules, "--rules.evaluation-interval=2s", "--alertmanager.url=" + f.amURL,
		fmt.Sprintf("--ring.replication-factor=%d", max(1, o.replicationFactor)),
	})
	if o.replicationFactor > 1 {
		replicationCA := testbed.NewCA(t, o.name+"-replicas")
		for _, r := range f.set.replicas {
			cert, key := replicationCA.Client(r.id)
			r.args = append(r.args, "--replication.tls-cert-file="+cert, "--replication.tls-key-file="+key,
				"--replication.tls-ca-file="+ca.CertFile, "--replication.tls-client-ca-file="+replicationCA.CertFile)
		}
	}
	f.three = f.set.replicas[:3]
	for _, r := range f.three {
		f.set.start(r)
	}
	for _, r := range f.three {
		f.set.waitReady(r)
	}
	f.lb = newBalancer(t)
	for _, r := range f.three {
		f.lb.add(r.agentAddr)
	}

	// A stock thanos query over every replica's StoreAPI, the fourth's
	// included before it runs.
	f.thanosURL = "http://" + testbed.FreeAddr(t)
	args := []string{"query", "--http-address=" + strings.TrimPrefix(f.thanosURL, "http://"), "--grpc-address=" + testbed.FreeAddr(t),
		"--query.replica-label=" + metricstore.DefaultReplicaLabel, "--deduplication.func=chain", "--log.level=warn"}
	for _, r := range f.set.replicas {
		args = append(args, "--endpoint="+r.grpcAddr)
	}
	tq := exec.Command(thanos, args...)
	tq.Stderr = processLog(t, "thanos-query")
	if err := tq.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tq.Process.Kill(); _ = tq.Wait() })

	kube, err := client.New(cp.RESTConfig, client.Options{Scheme: controlplane.Scheme()})
	if err != nil {
		t.Fatal(err)
	}
	f.kube = kube
	token, _, err := registration.NewTokens(kube, "fleetpulse-system").Create(ctx, registration.TokenOptions{TTL: time.Hour, AutoAccept: true, ClusterSet: "e2e"})
	if err != nil {
		t.Fatal(err)
	}
	pin := caPin(t, ca.CertFile)
	for i, c := range reals {
		name := fmt.Sprintf("real-%d", i)
		f.realNames = append(f.realNames, name)
		startRingAgent(t, agentBin, f.lb.URL(), token, pin, name, c.KubeconfigPath)
	}
	f.fleet, err = fleetsim.New(fleetsim.Config{
		Hub: f.lb.URL(), RootCAs: ca.Pool(), Token: token, Clusters: o.sims, Prefix: "sim",
		HeartbeatPeriod: agentHeartbeat, CollectionInterval: 2 * time.Second,
		RegisterConcurrency: 8, Workers: 32, RequestTimeout: 5 * time.Second, AgentVersion: "fleetsim",
		RecordWrites: true, Logger: slog.New(slog.NewTextHandler(processLog(t, "fleetsim"), &slog.HandlerOptions{Level: slog.LevelWarn})),
	})
	if err != nil {
		t.Fatal(err)
	}
	regCtx, regCancel := context.WithTimeout(ctx, 2*time.Minute)
	reg, err := f.fleet.Register(regCtx)
	regCancel()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d simulated clusters registered through the replicas in %s", o.sims, reg.End.Sub(reg.Start).Round(time.Millisecond))
	f.fleetStart = time.Now()
	runCtx, stopFleet := context.WithCancel(ctx)
	var fleetDone sync.WaitGroup
	fleetDone.Go(func() { f.fleet.Run(runCtx) })
	t.Cleanup(func() { stopFleet(); fleetDone.Wait(); f.fleet.Close() })
	return f
}
