package registration

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"k8s.io/client-go/rest"

	"github.com/fleetpulse/fleetpulse/api/agentapi"
)

func TestKubeClusterClaimsAndHealth(t *testing.T) {
	forbidden, unready := false, false
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/api/v1/namespaces/kube-system":
			if forbidden {
				w.WriteHeader(http.StatusForbidden)
				_, _ = w.Write([]byte(`{"kind":"Status","message":"namespaces \"kube-system\" is forbidden: User \"system:serviceaccount:x:y\" cannot get resource \"namespaces\""}`))
				return
			}
			_, _ = w.Write([]byte(`{"kind":"Namespace","metadata":{"name":"kube-system","uid":"` + testClusterUID + `"}}`))
		case "/version":
			_, _ = w.Write([]byte(`{"gitVersion":"v1.35.4","platform":"linux/arm64"}`))
		case "/readyz":
			if unready {
				w.WriteHeader(http.StatusInternalServerError)
				_, _ = w.Write([]byte("[-]etcd failed: reason withheld\nreadyz check failed"))
				return
			}
			_, _ = w.Write([]byte("ok"))
		default:
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()
	k, err := NewKubeClusterFor(&rest.Config{Host: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	claims, err := k.Claims(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := []agentapi.Claim{{Name: agentapi.ClaimClusterID, Value: testClusterUID}, {Name: agentapi.ClaimPlatform, Value: "linux/arm64"}}
	if len(claims) != 2 || claims[0] != want[0] || claims[1] != want[1] {
		t.Errorf("claims %v, want %v", claims, want)
	}
	if err := k.Healthy(ctx); err != nil {
		t.Errorf("Healthy = %v", err)
	}
	unready = true
	if err := k.Healthy(ctx); err == nil || !strings.Contains(err.Error(), "etcd failed") {
		t.Errorf("Healthy on an unready apiserver = %v", err)
	}
	forbidden = true
	var perm *PermanentError
	if _, err := k.Claims(ctx); !errors.As(err, &perm) || !strings.Contains(err.Error(), "cannot get resource") {
		t.Errorf("Claims when forbidden = %v, want a PermanentError with the apiserver's message", err)
	}
}

func TestNewKubeClusterNamesAMissingKubeconfig(t *testing.T) {
	if _, err := NewKubeCluster("/nonexistent/kubeconfig", "test"); err == nil || !strings.Contains(err.Error(), "--kubeconfig") {
		t.Errorf("NewKubeCluster = %v", err)
	}
}
