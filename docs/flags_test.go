package docs_test

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// hubFlag is one flag of `fleetpulse hub` as its --help prints it.
type hubFlag struct {
	name string
	// def is the default the help names ("(default 16)"), unquoted; empty
	// when it names none.
	def string
}

var (
	// helpFlag is a flag line of cobra's help: "  -h, --name type   usage".
	helpFlag = regexp.MustCompile(`^\s+(?:-[a-zA-Z], )?--([a-z0-9][a-z0-9.-]*)\b(.*)$`)
	// helpDefault is cobra's note of a flag's default at the end of its usage.
	helpDefault = regexp.MustCompile(`\(default (.+)\)$`)
	// rowFlag is a flag named in the first cell of a Markdown table row.
	rowFlag = regexp.MustCompile("^\\|\\s*`--([a-z0-9][a-z0-9.-]*)`")
)

// hubFlags builds the fleetpulse command and returns the flags that
// `fleetpulse hub --help` lists, global ones included. It starts nothing:
// --help only prints.
func hubFlags(t *testing.T) []hubFlag {
	t.Helper()
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command on PATH to build fleetpulse with")
	}
	bin := filepath.Join(t.TempDir(), "fleetpulse")
	build := exec.Command(goTool, "build", "-tags", "slicelabels", "-o", bin, "./cmd/fleetpulse")
	build.Dir = ".."
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/fleetpulse: %v\n%s", err, out)
	}
	out, err := exec.Command(bin, "hub", "--help").Output()
	if err != nil {
		t.Fatalf("fleetpulse hub --help: %v", err)
	}
	var flags []hubFlag
	sc := bufio.NewScanner(strings.NewReader(string(out)))
	for sc.Scan() {
		m := helpFlag.FindStringSubmatch(sc.Text())
		if m == nil || m[1] == "help" {
			continue
		}
		f := hubFlag{name: m[1]}
		if d := helpDefault.FindStringSubmatch(strings.TrimSpace(m[2])); d != nil && d[1] != "[]" {
			f.def = strings.Trim(d[1], `"`)
		}
		flags = append(flags, f)
	}
	if len(flags) < 10 {
		t.Fatalf("fleetpulse hub --help lists %d flags, want dozens; the help's format changed?\n%s", len(flags), out)
	}
	return flags
}

// flagRows returns the rows of docs/operations.md's tables that name a
// flag in their first cell, by flag, within the section that starts at
// heading (up to the next heading of the same level).
func flagRows(t *testing.T, heading string) map[string]string {
	t.Helper()
	b, err := os.ReadFile("operations.md")
	if err != nil {
		t.Fatal(err)
	}
	level := heading[:strings.IndexByte(heading, ' ')+1]
	rows := map[string]string{}
	in := false
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "#") {
			if l == heading {
				in = true
				continue
			}
			if in && strings.HasPrefix(l, level) {
				break
			}
		}
		if m := rowFlag.FindStringSubmatch(l); in && m != nil {
			rows[m[1]] = l
		}
	}
	if !in {
		t.Fatalf("operations.md has no heading %q", heading)
	}
	return rows
}

// hubFlagsHeading is the section of operations.md that lists the hub's flags.
const hubFlagsHeading = "## Hub flags"

// TestHubFlagsAreDocumented requires a row in operations.md's hub flags
// tables for every flag of `fleetpulse hub`, with the default the help
// names, and no row for a flag the hub does not have.
func TestHubFlagsAreDocumented(t *testing.T) {
	flags := hubFlags(t)
	rows := flagRows(t, hubFlagsHeading)
	has := map[string]bool{}
	for _, f := range flags {
		has[f.name] = true
		row, ok := rows[f.name]
		switch {
		case !ok:
			t.Errorf("flag --%s of fleetpulse hub is not in docs/operations.md (a row of %q)", f.name, hubFlagsHeading)
		case f.def != "" && !strings.Contains(row, "`"+f.def+"`"):
			t.Errorf("docs/operations.md's row of --%s does not name its default `%s`: %s", f.name, f.def, row)
		}
	}
	for name := range rows {
		if !has[name] {
			t.Errorf("docs/operations.md documents --%s, which fleetpulse hub --help does not list", name)
		}
	}
}
