package metadata

import (
	"errors"
	"fmt"
)

// Limits bound the metadata held.
type Limits struct {
	// MaxFamiliesPerCluster bounds the metric families a cluster has
	// metadata for. A cluster running the usual exporters (node,
	// kube-state-metrics, cAdvisor, the kubelet) has about 2,000.
	MaxFamiliesPerCluster int
	// MaxHelpBytes bounds a help text (longer is cut at a character
	// boundary) and a family's name and unit (longer are dropped): Mimir's
	// max_metadata_length.
	MaxHelpBytes int
}

// DefaultLimits are 10,000 families per cluster and 1 KiB of help.
func DefaultLimits() Limits {
	return Limits{MaxFamiliesPerCluster: 10_000, MaxHelpBytes: 1 << 10}
}

// Validate returns every problem with the limits.
func (l Limits) Validate() error {
	var errs []error
	if l.MaxFamiliesPerCluster < 1 {
		errs = append(errs, fmt.Errorf("metadata families per cluster %d: want at least 1", l.MaxFamiliesPerCluster))
	}
	if l.MaxHelpBytes < 1 {
		errs = append(errs, fmt.Errorf("metadata help length %d: want at least 1 byte", l.MaxHelpBytes))
	}
	return errors.Join(errs...)
}
