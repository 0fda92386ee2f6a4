// Package silence turns the standard logger off while the program's packages
// initialise, until package protodup turns it back on. It imports nothing
// but the standard library, so its import path, sorted before those of
// gogo/protobuf's users, makes it initialise before them (the Go
// specification orders package initialisation by import path among
// packages whose imports are ready).
package silence

import (
	"io"
	"log"
)

func init() { log.SetOutput(io.Discard) }
