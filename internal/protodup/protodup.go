// Package protodup keeps gogo/protobuf's "duplicate proto type registered"
// warnings off a program's standard error. Thanos's StoreAPI (through
// weaveworks/common) and dskit's memberlist KV each carry a copy of the same
// httpgrpc.proto, wire-identical, and both register its three types with
// gogo/protobuf at initialisation, which logs each second registration
// through the standard logger. A command imports this package for its side
// effect: the standard logger is silent from the start of initialisation
// (package silence) until both copies have registered, then writes to
// standard error again.
package protodup

import (
	"log"
	"os"

	// Both copies of httpgrpc register before this package initialises.
	_ "github.com/grafana/dskit/httpgrpc"
	_ "github.com/weaveworks/common/httpgrpc"

	_ "github.com/fleetpulse/fleetpulse/internal/protodup/silence"
)

func init() { log.SetOutput(os.Stderr) }
