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

// BenchmarkPolicyPropagation propagates one policy to a simulated fleet
// (test/bench/fleetsim: every cluster registers, heartbeats and writes its
// inventory, and runs a policy agent that long-polls its replicas and
// reports a status, as the agent's policy extension does) through one
// `fleetpulse hub` process on a real control plane, and measures the time
// from the Policy, its PlacementBinding and a Placement of every cluster
// being created to the root policy's status counting every cluster
// compliant, with the hub's and the control plane's CPU over that time
// beside the hub's CPU over a window as long before it (heartbeats and
// writes only). Knobs (environment): FLEETPULSE_POLICY_CLUSTERS (1000),
// FLEETPULSE_POLICY_POLL (30s, the agents' long-poll). Each iteration starts
// a control plane and a hub of its own; run it with -benchtime 1x.
func BenchmarkPolicyPropagation(b *testing.B) {
	clusters, poll := 1000, 30*time.Second
	if v := os.Getenv("FLEETPULSE_POLICY_CLUSTERS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			b.Fatalf("FLEETPULSE_POLICY_CLUSTERS=%q: want a positive integer", v)
		}
		clusters = n
	}
	if v := os.Getenv("FLEETPULSE_POLICY_POLL"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			b.Fatalf("FLEETPULSE_POLICY_POLL=%q: want a positive duration", v)
		}
		poll = d
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
	var seconds, hubCores, hubCPU, baseCores float64
	for b.Loop() {
		r := runPolicyPropagation(b, bin, clusters, poll)
		seconds, hubCores, hubCPU, baseCores = seconds+r.seconds, hubCores+r.hubCores, hubCPU+r.hubCPU, baseCores+r.baseCores
	}
	n := float64(b.N)
	b.ReportMetric(seconds/n, "s-to-all-compliant")
	b.ReportMetric(hubCores/n, "hub-cores")
	b.ReportMetric(hubCPU/n, "hub-cpu-s")
	b.ReportMetric(baseCores/n, "hub-cores-before")
	b.ReportMetric(0, "ns/op")
}

type policyRun struct{ seconds, hubCores, hubCPU, baseCores float64 }

func runPolicyPropagation(b *testing.B, bin string, clusters int, poll time.Duration) policyRun {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cp := testbed.StartClusters(b, "policyhub", 1, testbed.ClusterOptions{ControlPlaneOnly: true})[0]
	defer cp.Stop()
	ca := testbed.NewCA(b, "policy-agents")
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
		registration.TokenOptions{TTL: 24 * time.Hour, AutoAccept: true, Description: "policy benchmark"})
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
	runDone, policyDone := make(chan struct{}), make(chan struct{})
	go func() { defer close(runDone); fleet.Run(fleetCtx) }()
	go func() { defer close(policyDone); fleet.RunPolicies(fleetCtx, poll, fleetsim.AllCompliant) }()
	defer func() { stopFleet(); <-runDone; <-policyDone }()
	if !avail.waitFor(ctx, time.Now().Add(5*time.Minute), func(a *availability) bool { return a.available == clusters }) {
		b.Fatalf("%d of %d clusters Available after 5 minutes", avail.availableNow(), clusters)
	}
	b.Logf("%d clusters registered in %s and Available; hub RSS %.0f MiB", res.Registered, res.End.Sub(res.Start).Round(time.Millisecond), rssMiB(hub.PID()))

	pids := map[string]int{"hub": hub.PID(), "simulator": os.Getpid()}
	for name, pid := range cp.PIDs() {
		pids[name] = pid
	}
	// The hub's CPU before, over a window as long as the propagation is
	// bound to take at least (every agent's first poll answered).
	base := startCPU(pids)
	sleepCtx(ctx, 20*time.Second)
	baseCores := base.cores()

	start := time.Now()
	meter := startCPU(pids)
	createPolicy(b, ctx, kube)
	var last fleetv1.ComplianceSummary
	deadline := start.Add(10*time.Minute + time.Duration(clusters)*100*time.Millisecond)
	for {
		var p fleetv1.Policy
		if err := kube.Get(ctx, client.ObjectKey{Namespace: "bench", Name: "baseline"}, &p); err != nil {
			b.Fatal(err)
		}
		if s := p.Status.Summary; s != nil {
			last = *s
			if int(s.Clusters) == clusters && int(s.Compliant) == clusters {
				break
			}
		}
		if time.Now().After(deadline) {
			b.Fatalf("the root policy's summary after %s: %+v, want %d compliant clusters", time.Since(start).Round(time.Second), last, clusters)
		}
		sleepCtx(ctx, 100*time.Millisecond)
	}
	el := time.Since(start)
	cores := meter.cores()
	st := fleet.PolicyStats()
	run := policyRun{seconds: el.Seconds(), hubCores: cores["hub"], hubCPU: cores["hub"] * el.Seconds(), baseCores: baseCores["hub"]}
	delete(cores, "simulator")
	b.Logf("one policy to %d clusters: the root policy counts all compliant %.1fs after its creation; CPU meanwhile %s (hub %.1f CPU-seconds), before it hub %.2f cores; hub RSS %.0f MiB; agents: %d polls answered, %d reports (answer %s), %d failed calls",
		clusters, run.seconds, fmtCores(cores), run.hubCPU, run.baseCores, rssMiB(hub.PID()), st.Polls, st.Reports, st.ReportLatency, st.Errors)
	return run
}

// createPolicy creates, in namespace bench, a ClusterSet of every cluster,
// a Placement of all of it, and an inform Policy bound to it.
func createPolicy(b *testing.B, ctx context.Context, kube client.Client) {
	b.Helper()
	objs := []client.Object{
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "bench"}},
		&fleetv1.ClusterSet{ObjectMeta: metav1.ObjectMeta{Name: "all"}, Spec: fleetv1.ClusterSetSpec{ClusterSelector: &metav1.LabelSelector{}}},
		&fleetv1.Placement{ObjectMeta: metav1.ObjectMeta{Namespace: "bench", Name: "all"}, Spec: fleetv1.PlacementSpec{ClusterSets: []string{"all"}}},
		&fleetv1.Policy{
			ObjectMeta: metav1.ObjectMeta{Namespace: "bench", Name: "baseline", Annotations: map[string]string{fleetv1.AnnotationStandards: "NIST SP 800-53"}},
			Spec: fleetv1.PolicySpec{RemediationAction: fleetv1.RemediationInform, Severity: fleetv1.SeverityHigh,
				ObjectTemplates: []fleetv1.ObjectTemplate{{ComplianceType: fleetv1.MustHave, ObjectDefinition: runtime.RawExtension{Raw: []byte(
					`{"apiVersion":"networking.k8s.io/v1","kind":"NetworkPolicy","metadata":{"name":"deny-all","namespace":"default"},"spec":{"podSelector":{}}}`)}}}},
		},
		&fleetv1.PlacementBinding{ObjectMeta: metav1.ObjectMeta{Namespace: "bench", Name: "baseline"},
			PlacementRef: fleetv1.BindingPlacementRef{Name: "all"}, Subjects: []fleetv1.PolicySubject{{Kind: "Policy", Name: "baseline"}}},
	}
	for _, o := range objs {
		if err := kube.Create(ctx, o); err != nil {
			b.Fatal(fmt.Errorf("create %T %s: %w", o, o.GetName(), err))
		}
	}
}

func sleepCtx(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}
