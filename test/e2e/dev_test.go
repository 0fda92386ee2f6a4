package e2e

import (
	"bufio"
	"bytes"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/fleetpulse/fleetpulse/testbed"
)

// TestDevUpDown runs the local fleet as a user does: 'fleetpulse dev up'
// prints a kubectl command per cluster, each of which lists that cluster's
// Ready nodes; 'fleetpulse dev down' stops every process and removes the state.
func TestDevUpDown(t *testing.T) {
	t.Parallel()
	root, err := testbed.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	binDir := t.TempDir()
	build := exec.Command("go", "build", "-tags", "slicelabels", "-o", binDir+"/", "./cmd/fleetpulse", "./cmd/fleetpulse-agent")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build fleetpulse: %v\n%s", err, out)
	}
	bin := filepath.Join(binDir, "fleetpulse")
	state := filepath.Join(t.TempDir(), "dev")
	hubHTTP := testbed.FreeAddr(t)

	up := exec.Command(bin, "dev", "up", "--clusters=2", "--nodes=2", "--state-dir="+state,
		"--hub.http-address="+hubHTTP, "--hub.agents-address="+testbed.FreeAddr(t))
	up.Dir = root
	// Everything dev up prints, on both streams, counts towards how far down
	// its banner starts: a newcomer must not have to scroll for it.
	var printed atomic.Int64
	up.Stderr = countingWriter{testWriter{t}, &printed}
	stdout, err := up.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := up.Start(); err != nil {
		t.Fatal(err)
	}
	upDone := make(chan error, 1)
	t.Cleanup(func() {
		_ = up.Process.Signal(syscall.SIGTERM)
		select {
		case <-upDone:
		case <-time.After(30 * time.Second):
			_ = up.Process.Kill()
		}
	})

	// Read the banner up to its last line; the commands are in it.
	var commands [][]string
	var banner strings.Builder
	lines := make(chan string)
	go func() {
		s := bufio.NewScanner(stdout)
		for s.Scan() {
			lines <- s.Text()
		}
		close(lines)
		upDone <- up.Wait()
	}()
	kubectlLine := regexp.MustCompile(`^\s+(\S*kubectl) --kubeconfig (\S+) (get \S+)$`)
	timeout := time.After(3 * time.Minute)
banner:
	for {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatal("dev up ended before printing the fleet")
			}
			t.Log("dev up: " + l)
			if n := printed.Add(1); strings.HasPrefix(l, "Fleetpulse local fleet is up") && n > 20 {
				t.Errorf("dev up's banner starts on line %d of its output, want within the first 20", n)
			}
			banner.WriteString(l + "\n")
			if m := kubectlLine.FindStringSubmatch(l); m != nil {
				commands = append(commands, append([]string{m[1], "--kubeconfig", m[2]}, strings.Fields(m[3])...))
			}
			if strings.HasPrefix(l, "Press Ctrl-C") {
				break banner
			}
		case <-timeout:
			t.Fatal("dev up printed no fleet within 3 minutes")
		}
	}
	go func() {
		for range lines { // keep draining so dev up never blocks on stdout
		}
	}()
	if len(commands) != 3 {
		t.Fatalf("dev up printed %d kubectl commands, want 3 (hub and 2 clusters)", len(commands))
	}

	for _, c := range commands {
		if c[len(c)-1] == "managedclusters" {
			continue // below: registration takes a few seconds
		}
		cmd := exec.Command(c[0], c[1:]...)
		cmd.Dir = root
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("%s: %v\n%s", strings.Join(c, " "), err, out)
		}
		if n := strings.Count(string(out), " Ready "); n != 2 {
			t.Errorf("%s shows %d Ready nodes, want 2:\n%s", strings.Join(c, " "), n, out)
		}
	}
	// The agents held only a bootstrap token: both clusters registered, were
	// accepted by the token, heartbeat and report their inventory.
	registered := regexp.MustCompile(`(?m)^cluster-\d\s+true\s+True\s+v1\.35\.4\s+2\s`)
	for _, c := range commands {
		if c[len(c)-1] != "managedclusters" {
			continue
		}
		var out []byte
		deadline := time.Now().Add(90 * time.Second)
		for {
			cmd := exec.Command(c[0], c[1:]...)
			cmd.Dir = root
			out, err = cmd.CombinedOutput()
			if err == nil && len(registered.FindAll(out, -1)) == 2 {
				t.Logf("%s:\n%s", strings.Join(c, " "), out)
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: %v\n%s\nwant cluster-1 and cluster-2 accepted, Available, v1.35.4, 2 nodes", strings.Join(c, " "), err, out)
			}
			time.Sleep(time.Second)
		}
	}

	st, err := os.ReadFile(filepath.Join(state, "fleet.json"))
	if err != nil {
		t.Fatalf("dev up wrote no state: %v", err)
	}
	pids := regexp.MustCompile(`"(etcd|kube-[a-z-]+|kwok|fleetpulse-agent|prometheus-alertmanager)": (\d+)`).FindAllStringSubmatch(string(st), -1)
	if len(pids) != 4+6+6 {
		t.Errorf("fleet.json names %d processes, want 16:\n%s", len(pids), st)
	}
	amLine := regexp.MustCompile(`Alertmanager: (http://\S+)`).FindStringSubmatch(banner.String())
	if amLine == nil {
		t.Fatal("dev up printed no Alertmanager URL")
	}
	resp, err := http.Get(amLine[1] + "/-/ready")
	if err != nil {
		t.Fatalf("the printed Alertmanager %s does not answer: %v", amLine[1], err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("the printed Alertmanager %s answers %s to /-/ready", amLine[1], resp.Status)
	}

	// The agents report to the hub: each cluster's nodes, by cluster.
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		t.Fatal(err)
	}
	query := `count by (cluster) (k8s_node_condition_status{k8s_node_condition_type="Ready",k8s_node_condition_status="true"})`
	want := []string{`{cluster="cluster-1"} => 2`, `{cluster="cluster-2"} => 2`}
	var out []byte
	deadline := time.Now().Add(90 * time.Second)
	for time.Now().Before(deadline) {
		if out, err = exec.Command(promtool, "query", "instant", "http://"+hubHTTP, query).CombinedOutput(); err == nil && containsAll(string(out), want) {
			break
		}
		time.Sleep(500 * time.Millisecond)
	}
	if !containsAll(string(out), want) {
		t.Errorf("hub answers %q (err %v), want %q", out, err, want)
	}

	down := exec.Command(bin, "dev", "down", "--state-dir="+state)
	down.Dir = root
	if out, err := down.CombinedOutput(); err != nil {
		t.Fatalf("dev down: %v\n%s", err, out)
	}
	select {
	case err := <-upDone:
		if err != nil {
			t.Errorf("dev up exited with %v after dev down, want success", err)
		}
	case <-time.After(time.Minute):
		t.Fatal("dev up still running a minute after dev down")
	}
	for _, p := range pids {
		if exe, err := os.Readlink("/proc/" + p[2] + "/exe"); err == nil && strings.HasSuffix(exe, p[1]) {
			t.Errorf("%s (pid %s) still running after dev down", p[1], p[2])
		}
	}
	if _, err := os.Stat(state); !os.IsNotExist(err) {
		t.Errorf("state %s still there after dev down", state)
	}
}

type testWriter struct{ t *testing.T }

// countingWriter counts the lines written through it.
type countingWriter struct {
	w     io.Writer
	lines *atomic.Int64
}

func (w countingWriter) Write(b []byte) (int, error) {
	w.lines.Add(int64(bytes.Count(b, []byte("\n"))))
	return w.w.Write(b)
}

func (w testWriter) Write(b []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(b), "\n"))
	return len(b), nil
}
