package e2e

import (
	"io"
	"os"
	"path/filepath"
	"sync"
	"testing"
)

// processLogLines is how many of a process's last lines a failed test
// shows.
const processLogLines = 60

// processLog returns where a process the test runs writes its output: a
// file of the test's own. When the test fails, the file's last lines are
// logged after the test's own messages, so that a failure's reason is
// what its output starts with, not thousands of lines of an agent's log.
func processLog(t *testing.T, name string) io.Writer {
	t.Helper()
	path := filepath.Join(t.TempDir(), name+".log")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	w := &lockedFile{f: f}
	t.Cleanup(func() {
		w.close()
		if t.Failed() {
			t.Logf("%s's last log lines:\n%s", name, tailFile(path, processLogLines))
		}
	})
	return w
}

// lockedFile is a file that several goroutines (a process's stdout and
// stderr copiers, a logger) may write to, and that drops writes once
// closed.
type lockedFile struct {
	mu     sync.Mutex
	f      *os.File
	closed bool
}

func (w *lockedFile) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return len(p), nil
	}
	return w.f.Write(p)
}

func (w *lockedFile) close() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.closed = true
	w.f.Close()
}
