package bench

import (
	"context"
	"crypto/x509"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	fleetv1 "github.com/fleetpulse/fleetpulse/api/v1alpha1"
	"github.com/fleetpulse/fleetpulse/hub/controlplane"
	"github.com/fleetpulse/fleetpulse/hub/registration"
	"github.com/fleetpulse/fleetpulse/test/bench/fleetsim"
	"github.com/fleetpulse/fleetpulse/testbed"
)

// rolloutStages is how many decision groups, and so stages, the rollout has.
const rolloutStages = 10

// BenchmarkRollout1000Clusters10Stages rolls one change of a
// ManifestWorkSet out to a simulated fleet (test/bench/fleetsim: every
// cluster registers, heartbeats, writes its inventory, and runs a work
// applier that long-polls its ManifestWorks over the agents' gateway and
// reports each generation Applied and Available, as the agent's work
// extension does) through one `fleetpulse hub` process on a real control
// plane. Revision 1 is delivered to every cluster at once; revision 2 then
// rolls out ProgressivePerGroup over a Placement of 10 decision groups,
// with a soak (minSuccessTime) and a PromQL gate per stage over the
// inventory the clusters send. It measures the time from the change to the
// rollout's success, that time less the 10 soaks, and the hub's and the
// control plane's CPU over it. Knobs (environment):
// FLEETPULSE_FLEET_CLUSTERS (1000), FLEETPULSE_ROLLOUT_SOAK (10s). Each
// iteration starts a control plane and a hub of its own; run it with
// -benchtime 1x.
func BenchmarkRollout1000Clusters10Stages(b *testing.B) {
	clusters, soak := 1000, 10*time.Second
	if v := os.Getenv("FLEETPULSE_FLEET_CLUSTERS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < rolloutStages {
			b.Fatalf("FLEETPULSE_FLEET_CLUSTERS=%q: want an integer of at least %d", v, rolloutStages)
		}
		clusters = n
	}
	if v := os.Getenv("FLEETPULSE_ROLLOUT_SOAK"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d < 0 {
			b.Fatalf("FLEETPULSE_ROLLOUT_SOAK=%q: want a duration", v)
		}
		soak = d
	}
	root, err := testbed.RepoRoot()
	if err != nil {
		b.Fatal(err)
	}
	bin := filepath.Join(b.TempDir(), "fleetpulse")
	cmd := exec.Command("go", "build", "-tags", "slicelabels", "-o", bin, "./cmd/fleetpulse")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		b.Fatalf("build fleetpulse: %v\n%s", err, out)
	}
	var total, beyond, hubCores, apiCores float64
	for b.Loop() {
		r := runRollout(b, bin, clusters, soak)
		total, beyond, hubCores, apiCores = total+r.total, beyond+r.beyond, hubCores+r.hubCores, apiCores+r.apiCores
	}
	n := float64(b.N)
	b.ReportMetric(total/n, "s-total")
	b.ReportMetric(beyond/n, "s-beyond-soak")
	b.ReportMetric(hubCores/n, "hub-cores")
	b.ReportMetric(apiCores/n, "apiserver-cores")
	b.ReportMetric(0, "ns/op")
}

type rolloutRun struct{ total, beyond, hubCores, apiCores float64 }

func runRollout(b *testing.B, bin string, clusters int, soak time.Duration) rolloutRun {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cp := testbed.StartClusters(b, "rollouthub", 1, testbed.ClusterOptions{ControlPlaneOnly: true})[0]
	defer cp.Stop()
	ca := testbed.NewCA(b, "rollout-agents")
	serverCert, serverKey := ca.Server("hub")
	httpAddr, agentAddr, work := testbed.FreeAddr(b), testbed.FreeAddr(b), b.TempDir()
	hub, err := testbed.StartProcess("hub", bin, []string{"hub",
		"--http.listen-address=" + httpAddr, "--agents.listen-address=" + agentAddr,
		"--agents.tls-cert-file=" + serverCert, "--agents.tls-key-file=" + serverKey,
		"--agents.client-ca-file=" + ca.CertFile, "--agents.client-ca-key-file=" + ca.KeyFile,
		"--control-plane.kubeconfig=" + cp.KubeconfigPath, "--storage.tsdb.path=" + filepath.Join(work, "tsdb"),
	}, work)
	if err != nil {
		b.Fatal(err)
	}
	defer hub.Stop(30 * time.Second)
	defer func() {
		if b.Failed() {
			b.Logf("hub log (last lines):\n%s", fleetLogTail(filepath.Join(work, "hub.log"), 40))
		}
		if sum := logSummary(filepath.Join(work, "hub.log")); sum != "" {
			b.Logf("hub warnings and errors:\n%s", sum)
		}
	}()
	waitHubReady(b, "http://"+httpAddr, hub.PID())

	restCfg := rest.CopyConfig(cp.RESTConfig)
	restCfg.QPS, restCfg.Burst = 100, 200
	kube, err := client.New(restCfg, client.Options{Scheme: controlplane.Scheme()})
	if err != nil {
		b.Fatal(err)
	}
	token, _, err := registration.NewTokens(kube, registration.DefaultConfig().Namespace).Create(ctx,
		registration.TokenOptions{TTL: 24 * time.Hour, AutoAccept: true, Description: "rollout benchmark"})
	if err != nil {
		b.Fatal(err)
	}
	avail := watchAvailability(b, ctx, cp.RESTConfig)
	caPEM, err := os.ReadFile(ca.CertFile)
	if err != nil {
		b.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	cfg := fleetsim.DefaultConfig()
	cfg.Hub, cfg.RootCAs, cfg.Token, cfg.Clusters = "https://"+agentAddr, pool, token, clusters
	cfg.Logger = slog.New(slog.NewTextHandler(fleetLog{b}, &slog.HandlerOptions{Level: slog.LevelWarn}))
	fleet, err := fleetsim.New(cfg)
	if err != nil {
		b.Fatal(err)
	}
	defer fleet.Close()
	res, err := fleet.Register(ctx)
	if err != nil {
		b.Fatal(err)
	}
	fleetCtx, stopFleet := context.WithCancel(ctx)
	runDone, workDone := make(chan struct{}), make(chan struct{})
	go func() { defer close(runDone); fleet.Run(fleetCtx) }()
	go func() { defer close(workDone); fleet.RunWorks(fleetCtx, 30*time.Second) }()
	defer func() { stopFleet(); <-runDone; <-workDone }()
	if !avail.waitFor(ctx, time.Now().Add(5*time.Minute), func(a *availability) bool { return a.available == clusters }) {
		b.Fatalf("%d of %d clusters Available after 5 minutes", avail.availableNow(), clusters)
	}
	b.Logf("%d clusters registered in %s and Available; hub RSS %.0f MiB", res.Registered, res.End.Sub(res.Start).Round(time.Millisecond), rssMiB(hub.PID()))

	// Revision 1 to every cluster at once, as the fleet's starting point.
	perGroup := int32((clusters + rolloutStages - 1) / rolloutStages)
	start := time.Now()
	set := createRolloutSet(b, ctx, kube, perGroup)
	waitRollout(b, ctx, kube, set, 1, clusters, start.Add(10*time.Minute))
	b.Logf("revision 1 Applied and Available on %d clusters %.1fs after the set's creation", clusters, time.Since(start).Seconds())

	pids := map[string]int{"hub": hub.PID(), "simulator": os.Getpid()}
	for name, pid := range cp.PIDs() {
		pids[name] = pid
	}
	// Revision 2, in 10 stages, each with a soak and a gate.
	start = time.Now()
	meter := startCPU(pids)
	changeRolloutSet(b, ctx, kube, set, soak)
	st := waitRollout(b, ctx, kube, set, 2, clusters, start.Add(10*time.Minute+rolloutStages*soak))
	el := time.Since(start)
	cores := meter.cores()
	stages := len(st.Rollout.Stages)
	run := rolloutRun{total: el.Seconds(), beyond: (el - time.Duration(stages)*soak).Seconds(), hubCores: cores["hub"], apiCores: cores["kube-apiserver"]}
	ws := fleet.WorkStats()
	delete(cores, "simulator")
	b.Logf("revision 2 to %d clusters in %d stages (soak %s, one gate each): %.1fs, %.1fs beyond the soaks; CPU meanwhile %s (hub %.1f CPU-seconds); hub RSS %.0f MiB; work appliers: %d polls answered, %d reports (answer %s), %d failed calls",
		clusters, stages, soak, run.total, run.beyond, fmtCores(cores), run.hubCores*el.Seconds(), rssMiB(hub.PID()), ws.Polls, ws.Reports, ws.ReportLatency, ws.Errors)
	for _, s := range st.Rollout.Stages {
		if s.StartTime != nil && s.CompletionTime != nil {
			b.Logf("  stage %s: %d clusters, %.1fs", s.Name, s.Clusters, s.CompletionTime.Sub(s.StartTime.Time).Seconds())
		}
	}
	if stages != rolloutStages {
		b.Fatalf("the rollout had %d stages, want %d", stages, rolloutStages)
	}
	return run
}

// createRolloutSet creates, in namespace bench, a ClusterSet of every
// cluster, a Placement of it in decision groups of perGroup clusters, and
// a ManifestWorkSet of one ConfigMap (revision 1) rolled out to all at once.
func createRolloutSet(b *testing.B, ctx context.Context, kube client.Client, perGroup int32) client.ObjectKey {
	b.Helper()
	set := &fleetv1.ManifestWorkSet{
		ObjectMeta: metav1.ObjectMeta{Namespace: "bench", Name: "web", Annotations: map[string]string{fleetv1.AnnotationChangeCause: "web 1"}},
		Spec: fleetv1.ManifestWorkSetSpec{
			ManifestWorkTemplate: rolloutTemplate("1"),
			PlacementRefs:        []fleetv1.PlacementRef{{Name: "all", RolloutStrategy: fleetv1.RolloutStrategy{Type: "All"}}},
		},
	}
	objs := []client.Object{
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "bench"}},
		&fleetv1.ClusterSet{ObjectMeta: metav1.ObjectMeta{Name: "all"}, Spec: fleetv1.ClusterSetSpec{ClusterSelector: &metav1.LabelSelector{}}},
		&fleetv1.Placement{ObjectMeta: metav1.ObjectMeta{Namespace: "bench", Name: "all"}, Spec: fleetv1.PlacementSpec{ClusterSets: []string{"all"},
			DecisionStrategy: fleetv1.DecisionStrategy{ClustersPerDecisionGroup: perGroup}}},
		set,
	}
	for _, o := range objs {
		if err := kube.Create(ctx, o); err != nil {
			b.Fatal(fmt.Errorf("create %T %s: %w", o, o.GetName(), err))
		}
	}
	return client.ObjectKeyFromObject(set)
}

// changeRolloutSet makes revision 2: a new ConfigMap value, rolled out one
// decision group per stage, each soaking and gated on the clusters' ready
// nodes (the inventory every simulated cluster writes: three).
func changeRolloutSet(b *testing.B, ctx context.Context, kube client.Client, key client.ObjectKey, soak time.Duration) {
	b.Helper()
	var set fleetv1.ManifestWorkSet
	if err := kube.Get(ctx, key, &set); err != nil {
		b.Fatal(err)
	}
	set.Annotations[fleetv1.AnnotationChangeCause] = "web 2"
	set.Spec.ManifestWorkTemplate = rolloutTemplate("2")
	set.Spec.PlacementRefs[0].RolloutStrategy = fleetv1.RolloutStrategy{
		Type: "ProgressivePerGroup", MinSuccessTime: metav1.Duration{Duration: soak},
		Gates: []fleetv1.RolloutGate{{
			Name:             "nodes-ready",
			Query:            `sum by (cluster) (k8s_cluster_node_count{cluster=~"{{ .Clusters }}",k8s_node_condition_ready="true"})`,
			SuccessCondition: "value >= 3", FailureCondition: "value < 1", Interval: metav1.Duration{Duration: 5 * time.Second},
		}},
	}
	if err := kube.Update(ctx, &set); err != nil {
		b.Fatal(fmt.Errorf("change the ManifestWorkSet: %w", err))
	}
}

func rolloutTemplate(version string) fleetv1.ManifestWorkSpec {
	cm := fmt.Sprintf(`{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"web","namespace":"default"},"data":{"version":%q}}`, version)
	return fleetv1.ManifestWorkSpec{Workload: fleetv1.ManifestsTemplate{Manifests: []fleetv1.Manifest{{RawExtension: runtime.RawExtension{Raw: []byte(cm)}}}}}
}

// waitRollout waits until revision is stable: its rollout Succeeded with
// every cluster on it.
func waitRollout(b *testing.B, ctx context.Context, kube client.Client, key client.ObjectKey, revision int64, clusters int, deadline time.Time) fleetv1.ManifestWorkSetStatus {
	b.Helper()
	var last fleetv1.ManifestWorkSetStatus
	for {
		var set fleetv1.ManifestWorkSet
		if err := kube.Get(ctx, key, &set); err != nil {
			b.Fatal(err)
		}
		last = set.Status
		if r := last.Rollout; last.StableRevision == revision && r != nil && r.Revision == revision && r.Phase == fleetv1.RolloutSucceeded {
			for _, rs := range last.Revisions {
				if rs.Revision == revision && int(rs.Clusters) == clusters && int(rs.Available) == clusters {
					return last
				}
			}
		}
		if time.Now().After(deadline) {
			phase, msg := fleetv1.RolloutPhase(""), ""
			if last.Rollout != nil {
				phase, msg = last.Rollout.Phase, last.Rollout.Message
			}
			b.Fatalf("revision %d not stable on %d clusters by the deadline: stable %d, rollout %s %s, revisions %+v",
				revision, clusters, last.StableRevision, phase, msg, last.Revisions)
		}
		sleepCtx(ctx, 200*time.Millisecond)
	}
}
