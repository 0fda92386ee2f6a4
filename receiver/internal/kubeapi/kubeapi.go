// Package kubeapi holds what the agent's Kubernetes receivers share: how the
// configuration says to reach the apiserver, and a client of the core/v1 and
// apps/v1 APIs built from it, with informers over them.
package kubeapi

import (
	"errors"
	"fmt"
	"os"

	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

// Ways to reach the Kubernetes API.
const (
	// AuthServiceAccount uses the pod's service account (in-cluster config).
	AuthServiceAccount = "serviceAccount"
	// AuthKubeconfig uses a kubeconfig file.
	AuthKubeconfig = "kubeConfig"
)

// Config says how to reach the apiserver. Receivers squash it into theirs.
type Config struct {
	// AuthType is serviceAccount (in-cluster) or kubeConfig.
	AuthType string `mapstructure:"auth_type"`
	// Kubeconfig is the kubeconfig file for auth_type kubeConfig; empty means
	// $KUBECONFIG, then ~/.kube/config.
	Kubeconfig string `mapstructure:"kubeconfig"`
	// Context is the kubeconfig context; empty means the current one.
	Context string `mapstructure:"context"`
}

// Validate returns every problem, naming the fields.
func (c Config) Validate() error {
	var errs []error
	switch c.AuthType {
	case AuthServiceAccount:
		if c.Kubeconfig != "" {
			errs = append(errs, fmt.Errorf(`"kubeconfig" is set but "auth_type" is %q; use auth_type %q`, c.AuthType, AuthKubeconfig))
		}
	case AuthKubeconfig:
	default:
		errs = append(errs, fmt.Errorf(`"auth_type" %q: want %q or %q`, c.AuthType, AuthServiceAccount, AuthKubeconfig))
	}
	return errors.Join(errs...)
}

// RESTConfig builds the client configuration the settings ask for.
func (c Config) RESTConfig() (*rest.Config, error) {
	if c.AuthType == AuthServiceAccount {
		rc, err := rest.InClusterConfig()
		if err != nil {
			return nil, fmt.Errorf("in-cluster config (auth_type %s): %w", AuthServiceAccount, err)
		}
		return rc, nil
	}
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	if c.Kubeconfig != "" {
		if _, err := os.Stat(c.Kubeconfig); err != nil {
			return nil, fmt.Errorf("kubeconfig %q: %w", c.Kubeconfig, err)
		}
		rules.ExplicitPath = c.Kubeconfig
	}
	rc, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{CurrentContext: c.Context}).ClientConfig()
	if err != nil {
		return nil, fmt.Errorf("load kubeconfig: %w", err)
	}
	return rc, nil
}
