package testbed

import (
	"fmt"
	"net"
	"strconv"
	"sync"
	"testing"
)

// portAllocator hands out loopback ports that were free when asked and never
// hands the same port out twice in one process, so clusters started in
// parallel do not collide with each other. Another process may still take a
// port between allocation and use; StartCluster retries on that.
type portAllocator struct {
	mu    sync.Mutex
	given map[int]bool
}

var ports = &portAllocator{given: map[int]bool{}}

func (p *portAllocator) get() (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for range 100 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return 0, fmt.Errorf("find a free loopback port: %w", err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		_ = l.Close()
		if !p.given[port] {
			p.given[port] = true
			return port, nil
		}
	}
	return 0, fmt.Errorf("find a free loopback port: every port offered was already handed out")
}

// getN returns n distinct free ports.
func (p *portAllocator) getN(n int) ([]int, error) {
	out := make([]int, 0, n)
	for range n {
		port, err := p.get()
		if err != nil {
			return nil, err
		}
		out = append(out, port)
	}
	return out, nil
}

// FreeAddr returns a free 127.0.0.1:port for a test's listener, never handed
// out twice in this process.
func FreeAddr(t testing.TB) string {
	t.Helper()
	port, err := ports.get()
	if err != nil {
		t.Fatal(err)
	}
	return "127.0.0.1:" + strconv.Itoa(port)
}
