package rules

import (
	"os/exec"
	"path/filepath"
	"testing"
)

// TestPacks runs every pack's unit tests with promtool, and checks every
// pack parses as promtool sees it.
func TestPacks(t *testing.T) {
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		t.Fatalf("promtool not on PATH (Debian package prometheus; .ci/run installs it): %v", err)
	}
	tests, _ := filepath.Glob("*_test.yaml")
	if len(tests) == 0 {
		t.Fatal("no rule tests found")
	}
	for _, f := range tests {
		t.Run(f, func(t *testing.T) {
			if out, err := exec.Command(promtool, "test", "rules", f).CombinedOutput(); err != nil {
				t.Errorf("promtool test rules %s: %v\n%s", f, err, out)
			}
		})
	}
	paths, err := WriteTo(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range paths {
		if out, err := exec.Command(promtool, "check", "rules", p).CombinedOutput(); err != nil {
			t.Errorf("promtool check rules %s: %v\n%s", p, err, out)
		}
	}
}
