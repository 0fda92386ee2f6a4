package policy_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/fleetpulse/fleetpulse/api/agentapi"
	fleetv1 "github.com/fleetpulse/fleetpulse/api/v1alpha1"
	"github.com/fleetpulse/fleetpulse/hub/gateway"
	"github.com/fleetpulse/fleetpulse/hub/gateway/gatewaytest"
	"github.com/fleetpulse/fleetpulse/hub/policy"
	"github.com/fleetpulse/fleetpulse/internal/testutil"
	"github.com/fleetpulse/fleetpulse/internal/testutil/controlplane"
)

// TestGatewayServesEachClusterItsReplicas serves the policy endpoints over
// the agents' gateway (mutual TLS; a client certificate names the cluster)
// against a real control plane. A cluster lists only its own replicas, a poll
// waits for a change and wakes on one, status reports are written (and
// bounded), and a pruned replica's finalizer goes only while it is deleted.
func TestGatewayServesEachClusterItsReplicas(t *testing.T) {
	t.Parallel()
	cp := controlplane.Start(t)
	ctx := context.Background()
	agents := gateway.New(gateway.Options{})
	cp.StartManager(t, func(mgr ctrl.Manager) error {
		return policy.SetupGateway(mgr, agents, testutil.Logger(t, slog.LevelInfo), nil)
	})
	srv := gatewaytest.Start(t, agents)
	kube := cp.Client
	for _, c := range []string{"gw-1", "gw-2"} {
		require.NoError(t, kube.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: c}}))
	}
	// Replicas of a root no other test of the package writes: a
	// propagator running for another test reconciles the root a replica
	// names, and would prune these.
	replica := func(cluster string) *fleetv1.Policy {
		return &fleetv1.Policy{
			ObjectMeta: metav1.ObjectMeta{Namespace: cluster, Name: "gw.netpol", Finalizers: []string{fleetv1.FinalizerPolicyPrune},
				Labels: map[string]string{fleetv1.LabelRootPolicy: "gw.netpol", fleetv1.LabelPolicyCluster: cluster}},
			Spec: fleetv1.PolicySpec{ObjectTemplates: []fleetv1.ObjectTemplate{networkPolicyTemplate()}, PruneObjectBehavior: fleetv1.PruneDeleteIfCreated},
		}
	}
	r1 := replica("gw-1")
	require.NoError(t, kube.Create(ctx, r1))
	require.NoError(t, kube.Create(ctx, replica("gw-2")))
	// Not a replica: a policy a user wrote in the cluster's namespace.
	require.NoError(t, kube.Create(ctx, &fleetv1.Policy{ObjectMeta: metav1.ObjectMeta{Namespace: "gw-1", Name: "own"},
		Spec: fleetv1.PolicySpec{ObjectTemplates: []fleetv1.ObjectTemplate{networkPolicyTemplate()}}}))

	call := func(method, path, cluster string, body []byte) (int, []byte) {
		req, err := http.NewRequest(method, srv.URL+path, bytes.NewReader(body))
		require.NoError(t, err)
		resp, err := srv.Client(cluster).Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, b
	}
	var list agentapi.PolicyList
	testutil.Eventually(t, within, func() error {
		code, b := call("GET", agentapi.PathPolicies, "gw-1", nil)
		if code != http.StatusOK {
			return fmt.Errorf("list: %d %s", code, b)
		}
		if err := json.Unmarshal(b, &list); err != nil {
			return err
		}
		if len(list.Items) != 1 {
			return fmt.Errorf("gw-1 lists %d items, want its one replica", len(list.Items))
		}
		return nil
	})
	it := list.Items[0]
	require.Equal(t, "gw.netpol", it.Name)
	require.Equal(t, "gw", it.RootNamespace)
	require.Equal(t, "netpol", it.RootName)
	require.Equal(t, fleetv1.PruneDeleteIfCreated, it.Spec.PruneObjectBehavior)
	code, _ := call("GET", agentapi.PathPolicies, "", nil)
	require.Equal(t, http.StatusUnauthorized, code)

	// Unchanged: the poll waits out its timeout and answers 304.
	start := time.Now()
	code, _ = call("GET", agentapi.PathPolicies+"?resourceVersion="+list.ResourceVersion+"&timeout=300ms", "gw-1", nil)
	require.Equal(t, http.StatusNotModified, code)
	require.GreaterOrEqual(t, time.Since(start), 300*time.Millisecond)
	// A change wakes a waiting poll.
	woke := make(chan int, 1)
	go func() {
		code, _ := call("GET", agentapi.PathPolicies+"?resourceVersion="+list.ResourceVersion+"&timeout=30s", "gw-1", nil)
		woke <- code
	}()
	testutil.Eventually(t, within, func() error {
		p := &fleetv1.Policy{}
		if err := kube.Get(ctx, client.ObjectKeyFromObject(r1), p); err != nil {
			return err
		}
		p.Spec.RemediationAction = fleetv1.RemediationEnforce
		return kube.Update(ctx, p)
	})
	select {
	case code := <-woke:
		require.Equal(t, http.StatusOK, code)
	case <-time.After(within):
		t.Fatal("the poll did not wake on the replica's change")
	}

	// Status: written for the caller's own replica only.
	report, _ := json.Marshal(agentapi.PolicyStatusRequest{UID: it.UID, Status: fleetv1.PolicyStatus{Compliant: fleetv1.NonCompliant,
		History: []fleetv1.ComplianceEvent{{Time: metav1.Now(), Compliant: fleetv1.NonCompliant, Message: "networkpolicies [deny-all] not found"}}}})
	code, b := call("PUT", agentapi.PolicyStatusPath("gw.netpol"), "gw-1", report)
	require.Equal(t, http.StatusNoContent, code, string(b))
	got := &fleetv1.Policy{}
	require.NoError(t, kube.Get(ctx, client.ObjectKeyFromObject(r1), got))
	require.Equal(t, fleetv1.NonCompliant, got.Status.Compliant)
	code, b = call("PUT", agentapi.PolicyStatusPath("gw.netpol"), "gw-2", report)
	require.Equal(t, http.StatusConflict, code, "gw-2's replica has another UID: %s", b)
	code, _ = call("PUT", agentapi.PolicyStatusPath("own"), "gw-1", report)
	require.Equal(t, http.StatusNotFound, code, "a user's own policy is not a replica the agent may write")
	code, b = call("PUT", agentapi.PolicyStatusPath("gw.netpol"), "gw-1", []byte("{"))
	require.Equal(t, http.StatusBadRequest, code)
	require.Contains(t, string(b), "decode the status report")
	code, b = call("PUT", agentapi.PolicyStatusPath("gw.netpol"), "gw-1", []byte(`{"uid":"`+strings.Repeat("x", 2<<20)+`"}`))
	require.Equal(t, http.StatusRequestEntityTooLarge, code)
	require.Contains(t, string(b), "over 1048576 bytes")

	// Finalizer: refused while the replica lives, removed once deleted.
	code, _ = call("DELETE", agentapi.PolicyFinalizerPath("gw.netpol"), "gw-1", nil)
	require.Equal(t, http.StatusConflict, code)
	require.NoError(t, kube.Delete(ctx, r1))
	testutil.Eventually(t, within, func() error {
		code, b := call("DELETE", agentapi.PolicyFinalizerPath("gw.netpol")+"?uid="+it.UID, "gw-1", nil)
		if code != http.StatusNoContent {
			return fmt.Errorf("finalizer: %d %s", code, b)
		}
		if err := kube.Get(ctx, client.ObjectKeyFromObject(r1), &fleetv1.Policy{}); !apierrors.IsNotFound(err) {
			return fmt.Errorf("replica still there (%v)", err)
		}
		return nil
	})
}
