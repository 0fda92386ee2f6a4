package testbed

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// process is one child process of a cluster, with its output in a log file.
type process struct {
	name    string
	cmd     *exec.Cmd
	logPath string
	done    chan struct{} // closed when the process has exited
	err     error         // exit error; read only after done is closed
}

// startProcess starts binary with args. Its stdout and stderr go to
// logDir/<name>.log. The child gets SIGKILL if this process dies, and runs in a
// process group of its own so that a terminal's Ctrl-C reaches only us and we
// stop the children in order.
func startProcess(name, binary string, args []string, logDir string, env ...string) (*process, error) {
	logPath := filepath.Join(logDir, name+".log")
	logFile, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("open log of %s: %w", name, err)
	}
	cmd := exec.Command(binary, args...)
	if len(env) > 0 {
		cmd.Env = append(os.Environ(), env...)
	}
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		_ = logFile.Close()
		return nil, fmt.Errorf("start %s (%s): %w", name, binary, err)
	}
	p := &process{name: name, cmd: cmd, logPath: logPath, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		_ = logFile.Close()
		close(p.done)
	}()
	return p, nil
}

// exited reports whether the process has ended, with its exit error.
func (p *process) exited() (bool, error) {
	select {
	case <-p.done:
		return true, p.err
	default:
		return false, nil
	}
}

// stop sends SIGTERM to the process group, and SIGKILL after grace.
func (p *process) stop(grace time.Duration) {
	if ok, _ := p.exited(); ok {
		return
	}
	pgid := p.cmd.Process.Pid
	_ = syscall.Kill(-pgid, syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(grace):
		_ = syscall.Kill(-pgid, syscall.SIGKILL)
		<-p.done
	}
}

// logTail returns the last n lines of the process's log, for error messages.
func (p *process) logTail(n int) string {
	b, err := os.ReadFile(p.logPath)
	if err != nil {
		return ""
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	// etcd warns of every request slower than 100 ms; under a loaded test
	// run those fill any tail and say nothing of why a test failed.
	lines = slices.DeleteFunc(lines, func(l string) bool { return strings.Contains(l, `"msg":"request stats"`) })
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// errorf describes a failure of the process with the tail of its log.
func (p *process) errorf(format string, args ...any) error {
	msg := fmt.Sprintf(format, args...)
	if ok, err := p.exited(); ok {
		msg += fmt.Sprintf(" (%s exited: %v)", p.name, err)
	}
	return fmt.Errorf("%s; last lines of %s:\n%s", msg, p.logPath, p.logTail(15))
}

// portInUse reports whether the process failed because a port was taken.
func (p *process) portInUse() bool {
	b, _ := os.ReadFile(p.logPath)
	return bytes.Contains(b, []byte("address already in use"))
}

// rssBytes returns the resident set size of the process, from /proc.
func (p *process) rssBytes() (int64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", p.cmd.Process.Pid))
	if err != nil {
		return 0, fmt.Errorf("read status of %s: %w", p.name, err)
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		if rest, ok := strings.CutPrefix(s.Text(), "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			if err != nil {
				return 0, fmt.Errorf("parse VmRSS of %s: %w", p.name, err)
			}
			return kb << 10, nil
		}
	}
	return 0, errors.New("no VmRSS in /proc status of " + p.name)
}

// waitFor polls check every interval until it returns true, the process
// exits, or ctx ends.
func (p *process) waitFor(ctx context.Context, what string, check func(context.Context) bool) error {
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		if check(ctx) {
			return nil
		}
		if ok, _ := p.exited(); ok {
			return p.errorf("%s: process ended before %s", p.name, what)
		}
		select {
		case <-ctx.Done():
			return p.errorf("%s: waiting for %s: %v", p.name, what, ctx.Err())
		case <-tick.C:
		}
	}
}

// Process is a child process started by StartProcess.
type Process struct{ p *process }

// StartProcess starts binary as the test bed starts its own processes: output
// to logDir/<name>.log, in a process group of its own, killed if this process
// dies. The local fleet runs its agents and Alertmanager this way.
func StartProcess(name, binary string, args []string, logDir string) (*Process, error) {
	return StartProcessEnv(name, binary, args, nil, logDir)
}

// StartProcessEnv is StartProcess with variables added to the environment
// (KEY=value), for secrets that must not show in the process list.
func StartProcessEnv(name, binary string, args, env []string, logDir string) (*Process, error) {
	p, err := startProcess(name, binary, args, logDir, env...)
	if err != nil {
		return nil, err
	}
	return &Process{p: p}, nil
}

// PID is the process id.
func (p *Process) PID() int { return p.p.cmd.Process.Pid }

// Stop sends SIGTERM to the process group, and SIGKILL after grace; it
// returns once the process has exited.
func (p *Process) Stop(grace time.Duration) { p.p.stop(grace) }
