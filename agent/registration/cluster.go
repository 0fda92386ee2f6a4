package registration

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"

	"k8s.io/apimachinery/pkg/version"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/fleetpulse/fleetpulse/api/agentapi"
)

// Cluster is what the agent tells the hub about its own cluster.
type Cluster interface {
	// Claims returns the cluster's claims: agentapi.ClaimClusterID (the UID
	// of its kube-system namespace) and agentapi.ClaimPlatform. An error
	// that is a *PermanentError will not go away by retrying.
	Claims(ctx context.Context) ([]agentapi.Claim, error)
	// Healthy returns nil when the cluster's apiserver answers its
	// readiness check, or why not.
	Healthy(ctx context.Context) error
}

// PermanentError marks a failure that retrying does not cure (the agent's
// identity lacks a permission, say).
type PermanentError struct{ Err error }

func (e *PermanentError) Error() string { return e.Err.Error() }
func (e *PermanentError) Unwrap() error { return e.Err }

// KubeCluster reaches the cluster's apiserver with client-go's REST
// configuration: GET /api/v1/namespaces/kube-system, /version and /readyz.
// It uses plain requests rather than a clientset, which would link every
// built-in API group into the agent.
type KubeCluster struct {
	base   string
	client *http.Client
}

// NewKubeCluster loads a kubeconfig, or the in-cluster configuration when
// kubeconfig is empty.
func NewKubeCluster(kubeconfig, userAgent string) (*KubeCluster, error) {
	var rc *rest.Config
	var err error
	if kubeconfig == "" {
		if rc, err = rest.InClusterConfig(); err != nil {
			return nil, fmt.Errorf("in-cluster config (no --kubeconfig given): %w", err)
		}
	} else {
		if _, err := os.Stat(kubeconfig); err != nil {
			return nil, fmt.Errorf("--kubeconfig %q: %w", kubeconfig, err)
		}
		rules := &clientcmd.ClientConfigLoadingRules{ExplicitPath: kubeconfig}
		if rc, err = clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, nil).ClientConfig(); err != nil {
			return nil, fmt.Errorf("load kubeconfig %q: %w", kubeconfig, err)
		}
	}
	rc.UserAgent = userAgent
	return NewKubeClusterFor(rc)
}

// NewKubeClusterFor uses a REST configuration.
func NewKubeClusterFor(rc *rest.Config) (*KubeCluster, error) {
	u, _, err := rest.DefaultServerUrlFor(rc)
	if err != nil {
		return nil, fmt.Errorf("apiserver URL: %w", err)
	}
	hc, err := rest.HTTPClientFor(rc)
	if err != nil {
		return nil, fmt.Errorf("build kubernetes client: %w", err)
	}
	return &KubeCluster{base: strings.TrimSuffix(u.String(), "/"), client: hc}, nil
}

// Claims reads the kube-system namespace's UID and the apiserver's platform.
func (k *KubeCluster) Claims(ctx context.Context) ([]agentapi.Claim, error) {
	var ns struct {
		Metadata struct {
			UID string `json:"uid"`
		} `json:"metadata"`
	}
	if err := k.get(ctx, "/api/v1/namespaces/kube-system", &ns); err != nil {
		return nil, fmt.Errorf("read namespace kube-system for the %s claim: %w", agentapi.ClaimClusterID, err)
	}
	if ns.Metadata.UID == "" {
		return nil, fmt.Errorf("namespace kube-system has no uid")
	}
	var v version.Info
	if err := k.get(ctx, "/version", &v); err != nil {
		return nil, fmt.Errorf("read the apiserver's version for the %s claim: %w", agentapi.ClaimPlatform, err)
	}
	claims := []agentapi.Claim{{Name: agentapi.ClaimClusterID, Value: ns.Metadata.UID}}
	if v.Platform != "" {
		claims = append(claims, agentapi.Claim{Name: agentapi.ClaimPlatform, Value: v.Platform})
	}
	return claims, nil
}

// Healthy asks the apiserver's /readyz.
func (k *KubeCluster) Healthy(ctx context.Context) error {
	return k.get(ctx, "/readyz", nil)
}

func (k *KubeCluster) get(ctx context.Context, path string, out any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, k.base+path, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Accept", "application/json")
	resp, err := k.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		msg := strings.TrimSpace(string(body))
		var st struct {
			Message string `json:"message"`
		}
		if json.Unmarshal(body, &st) == nil && st.Message != "" {
			msg = st.Message
		}
		if len(msg) > 300 {
			msg = msg[:300] + "…"
		}
		err := fmt.Errorf("GET %s: %s: %s", path, resp.Status, msg)
		if resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden {
			return &PermanentError{err}
		}
		return err
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(body, out); err != nil {
		return fmt.Errorf("GET %s: %w", path, err)
	}
	return nil
}
