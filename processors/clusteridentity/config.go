package clusteridentity

import (
	"errors"
	"fmt"

	"k8s.io/apimachinery/pkg/util/validation"
)

// Resource attributes the processor sets.
const (
	AttrClusterName = "k8s.cluster.name"
	AttrClusterSet  = "fleetpulse.cluster.set"
)

// Config is the processor's configuration.
type Config struct {
	// ClusterName is the cluster's registered name (a DNS-1123 label).
	ClusterName string `mapstructure:"cluster_name"`
	// ClusterSet is the cluster set the cluster belongs to; empty leaves the
	// attribute out.
	ClusterSet string `mapstructure:"cluster_set"`

	_ struct{}
}

// Validate returns every problem with the configuration.
func (c *Config) Validate() error {
	var errs []error
	if c.ClusterName == "" {
		errs = append(errs, errors.New(`"cluster_name" is required`))
	} else if msgs := validation.IsDNS1123Label(c.ClusterName); len(msgs) > 0 {
		errs = append(errs, fmt.Errorf(`"cluster_name" %q: %v`, c.ClusterName, msgs))
	}
	if c.ClusterSet != "" {
		if msgs := validation.IsDNS1123Label(c.ClusterSet); len(msgs) > 0 {
			errs = append(errs, fmt.Errorf(`"cluster_set" %q: %v`, c.ClusterSet, msgs))
		}
	}
	return errors.Join(errs...)
}
