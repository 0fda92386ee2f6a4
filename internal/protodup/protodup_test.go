package protodup_test

import (
	"bytes"
	"log"
	"os"
	"os/exec"
	"strings"
	"testing"

	_ "github.com/fleetpulse/fleetpulse/internal/protodup"
)

// TestNoDuplicateWarningsAndLoggerBack runs this test binary again, whose
// initialisation registers both copies of httpgrpc as a command's does: its
// standard error must hold no gogo/protobuf warning, and a line logged once
// initialisation is over.
func TestNoDuplicateWarningsAndLoggerBack(t *testing.T) {
	if os.Getenv("PROTODUP_CHILD") == "1" {
		log.Print("logger is back")
		return
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestNoDuplicateWarningsAndLoggerBack$")
	cmd.Env = append(os.Environ(), "PROTODUP_CHILD=1")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("child: %v\n%s", err, stderr.String())
	}
	if strings.Contains(stderr.String(), "duplicate proto type registered") {
		t.Errorf("gogo/protobuf's warnings reached standard error:\n%s", stderr.String())
	}
	if !strings.Contains(stderr.String(), "logger is back") {
		t.Errorf("the standard logger stayed silent after initialisation; standard error:\n%s", stderr.String())
	}
}
