package policy_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/yaml"

	"github.com/fleetpulse/fleetpulse/agent/policy"
	"github.com/fleetpulse/fleetpulse/agent/policy/policytest"
	fleetv1 "github.com/fleetpulse/fleetpulse/api/v1alpha1"
	"github.com/fleetpulse/fleetpulse/internal/testutil"
	"github.com/fleetpulse/fleetpulse/internal/testutil/controlplane"
)

// The package's tests share one real apiserver (with the controller
// manager, which namespaces' deletion needs) and name their namespaces
// apart.
func TestMain(m *testing.M) { controlplane.Main(m) }

// within bounds every wait on the engine: evaluations from the cache take
// milliseconds, writes a few round trips.
const within = 30 * time.Second

var (
	cmGVR = schema.GroupVersionResource{Version: "v1", Resource: "configmaps"}
	npGVR = schema.GroupVersionResource{Group: "networking.k8s.io", Version: "v1", Resource: "networkpolicies"}
	rqGVR = schema.GroupVersionResource{Version: "v1", Resource: "resourcequotas"}
	rbGVR = schema.GroupVersionResource{Group: "rbac.authorization.k8s.io", Version: "v1", Resource: "rolebindings"}
	nsGVR = schema.GroupVersionResource{Version: "v1", Resource: "namespaces"}
)

// env is a running engine on the shared cluster, with its source, sink and
// metrics.
type env struct {
	rc      *rest.Config
	dyn     dynamic.Interface
	engine  *policy.Engine
	source  *policytest.Source
	sink    *policytest.Sink
	metrics *sdkmetric.ManualReader
}

// start runs an engine until the test ends; edit may change its
// configuration (its RESTConfig, to run as another user).
func start(t *testing.T, edit func(*policy.Config)) *env {
	t.Helper()
	cp := controlplane.Start(t)
	e := &env{rc: cp.RESTConfig, dyn: dynamic.NewForConfigOrDie(cp.RESTConfig), source: policytest.NewSource(),
		sink: policytest.NewSink(), metrics: sdkmetric.NewManualReader()}
	cfg := policy.Config{ClusterName: "c1", RESTConfig: cp.RESTConfig, Source: e.source, Sink: e.sink,
		MeterProvider: sdkmetric.NewMeterProvider(sdkmetric.WithReader(e.metrics)), Logger: testutil.Logger(t, slog.LevelInfo)}
	if edit != nil {
		edit(&cfg)
	}
	eng, err := policy.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	e.engine = eng
	testutil.Run(t, eng.Run, nil)
	return e
}

// namespace creates a namespace for the test, deleted when it ends.
func (e *env) namespace(t *testing.T, name string, labels map[string]string) {
	t.Helper()
	ns := &unstructured.Unstructured{}
	ns.SetAPIVersion("v1")
	ns.SetKind("Namespace")
	ns.SetName(name)
	ns.SetLabels(labels)
	if _, err := e.dyn.Resource(nsGVR).Create(context.Background(), ns, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.dyn.Resource(nsGVR).Delete(context.Background(), name, metav1.DeleteOptions{}) })
}

// create creates an object from YAML.
func (e *env) create(t *testing.T, gvr schema.GroupVersionResource, y string) *unstructured.Unstructured {
	t.Helper()
	o := object(t, y)
	got, err := e.dyn.Resource(gvr).Namespace(o.GetNamespace()).Create(context.Background(), o, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("create %s %s: %v", gvr.Resource, o.GetName(), err)
	}
	return got
}

func (e *env) get(gvr schema.GroupVersionResource, namespace, name string) (*unstructured.Unstructured, error) {
	return e.dyn.Resource(gvr).Namespace(namespace).Get(context.Background(), name, metav1.GetOptions{})
}

func object(t testing.TB, y string) *unstructured.Unstructured {
	t.Helper()
	j, err := yaml.YAMLToJSON([]byte(y))
	if err != nil {
		t.Fatal(err)
	}
	o := &unstructured.Unstructured{}
	if err := o.UnmarshalJSON(j); err != nil {
		t.Fatal(err)
	}
	return o
}

// tmpl is an object template from YAML.
func tmpl(t testing.TB, ct fleetv1.ComplianceType, y string) fleetv1.ObjectTemplate {
	t.Helper()
	j, err := yaml.YAMLToJSON([]byte(y))
	if err != nil {
		t.Fatal(err)
	}
	return fleetv1.ObjectTemplate{ComplianceType: ct, ObjectDefinition: runtime.RawExtension{Raw: j}}
}

// newPolicy is a replica as the hub makes it, in namespace "cluster1" (the
// cluster's namespace on the hub) and named "policies.<name>" for root
// policy <name> of namespace "policies", evaluated again only on changes so
// that tests see watches at work.
func newPolicy(name string, action fleetv1.RemediationAction, templates ...fleetv1.ObjectTemplate) *fleetv1.Policy {
	return &fleetv1.Policy{
		ObjectMeta: metav1.ObjectMeta{Namespace: "cluster1", Name: "policies." + name,
			Labels: map[string]string{fleetv1.LabelRootPolicy: "policies." + name}},
		Spec: fleetv1.PolicySpec{RemediationAction: action, Severity: fleetv1.SeverityHigh, ObjectTemplates: templates,
			EvaluationInterval: fleetv1.EvaluationInterval{Compliant: "never", NonCompliant: "never"}},
	}
}

// waitStatus polls the sink until check accepts the policy's status.
func (e *env) waitStatus(t *testing.T, name string, check func(*fleetv1.PolicyStatus) error) *fleetv1.PolicyStatus {
	t.Helper()
	var st *fleetv1.PolicyStatus
	testutil.Eventually(t, within, func() error {
		st = e.sink.Status("cluster1", "policies."+name)
		if st == nil {
			return fmt.Errorf("policy %s: no status yet", name)
		}
		if err := check(st); err != nil {
			return fmt.Errorf("policy %s: %w; status: %s", name, err, dump(st))
		}
		return nil
	}, "status of policy %s", name)
	return st
}

// is checks the verdict and that the generation was evaluated.
func is(want fleetv1.ComplianceState, generation int64, more ...func(*fleetv1.PolicyStatus) error) func(*fleetv1.PolicyStatus) error {
	return func(st *fleetv1.PolicyStatus) error {
		if st.ObservedGeneration < generation {
			return fmt.Errorf("generation %d evaluated, want %d", st.ObservedGeneration, generation)
		}
		if st.Compliant != want {
			return fmt.Errorf("verdict %s, want %s", st.Compliant, want)
		}
		for _, m := range more {
			if err := m(st); err != nil {
				return err
			}
		}
		return nil
	}
}

// message checks that template i's message holds each part.
func message(i int, parts ...string) func(*fleetv1.PolicyStatus) error {
	return func(st *fleetv1.PolicyStatus) error {
		if i >= len(st.Templates) {
			return fmt.Errorf("no template %d", i)
		}
		for _, p := range parts {
			if !strings.Contains(st.Templates[i].Message, p) {
				return fmt.Errorf("template %d message %q lacks %q", i, st.Templates[i].Message, p)
			}
		}
		return nil
	}
}

func dump(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// gauge returns fleetpulse.policy.compliant for a policy, and the
// transitions counted into state to.
func (e *env) gauge(t *testing.T, name string) (value int64, transitions map[string]int64) {
	t.Helper()
	var rm metricdata.ResourceMetrics
	if err := e.metrics.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	value, transitions = -2, map[string]int64{}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			switch d := m.Data.(type) {
			case metricdata.Gauge[int64]:
				for _, p := range d.DataPoints {
					if v, _ := p.Attributes.Value("policy"); v.AsString() == name && m.Name == "fleetpulse.policy.compliant" {
						value = p.Value
					}
				}
			case metricdata.Sum[int64]:
				for _, p := range d.DataPoints {
					if v, _ := p.Attributes.Value("policy"); v.AsString() == name && m.Name == "fleetpulse.policy.transitions" {
						to, _ := p.Attributes.Value("compliant")
						transitions[to.AsString()] = p.Value
					}
				}
			}
		}
	}
	return value, transitions
}
