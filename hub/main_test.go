package hub

import (
	"testing"

	testcp "github.com/fleetpulse/fleetpulse/internal/testutil/controlplane"
)

// TestMain stops the control plane the leader-election tests share.
func TestMain(m *testing.M) { testcp.Main(m) }
