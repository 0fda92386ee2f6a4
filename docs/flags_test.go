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
	// rowPackage is a package path named in the first cell of a table row.
	rowPackage = regexp.MustCompile("^\\|\\s*`([a-z0-9][a-z0-9/._-]*)`\\s*\\|")
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

// tableRows returns the rows of a Markdown file's tables whose first cell
// first matches, by its first submatch, within the section that starts at
// heading (up to the next heading of the same level).
func tableRows(t *testing.T, file, heading string, first *regexp.Regexp) map[string]string {
	t.Helper()
	b, err := os.ReadFile(file)
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
		if m := first.FindStringSubmatch(l); in && m != nil {
			rows[m[1]] = l
		}
	}
	if !in {
		t.Fatalf("%s has no heading %q", file, heading)
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
	rows := tableRows(t, "operations.md", hubFlagsHeading, rowFlag)
	// A default taken from the machine is documented by what it is.
	host, _ := os.Hostname()
	has := map[string]bool{}
	for _, f := range flags {
		has[f.name] = true
		row, ok := rows[f.name]
		switch {
		case !ok:
			t.Errorf("flag --%s of fleetpulse hub is not in docs/operations.md (a row of %q)", f.name, hubFlagsHeading)
		case f.def == host && strings.Contains(row, "the host name"):
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

// packagesHeading is the section of architecture.md that lists the packages.
const packagesHeading = "## Packages"

// TestPackagesAreDocumented requires a row in architecture.md's package
// table for every package `go list ./...` finds in the product module, and
// no row for a package that does not exist.
func TestPackagesAreDocumented(t *testing.T) {
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command on PATH to list the packages with")
	}
	run := func(args ...string) string {
		cmd := exec.Command(goTool, args...)
		cmd.Dir = ".."
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("go %s: %v", strings.Join(args, " "), err)
		}
		return strings.TrimSpace(string(out))
	}
	module := run("list", "-m")
	rows := tableRows(t, "architecture.md", packagesHeading, rowPackage)
	has := map[string]bool{}
	for _, path := range strings.Fields(run("list", "-tags", "slicelabels", "./...")) {
		pkg := strings.TrimPrefix(strings.TrimPrefix(path, module), "/")
		if pkg == "" {
			pkg = "."
		}
		has[pkg] = true
		if _, ok := rows[pkg]; !ok {
			t.Errorf("package %s is not in docs/architecture.md (a row of %q)", pkg, packagesHeading)
		}
	}
	for pkg := range rows {
		if !has[pkg] {
			t.Errorf("docs/architecture.md lists package %s, which go list ./... does not find", pkg)
		}
	}
}
