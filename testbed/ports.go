package testbed

import (
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// portAllocator hands out loopback ports that were free when asked and never
// hands the same port out twice in one process, so clusters started in
// parallel do not collide with each other. It picks them below the kernel's
// ephemeral range, which every outgoing connection and every listener on
// port 0 draws from: a port picked there is soon some connection's source
// port, and the test's listener then fails with "address already in use".
// Another process may still take a port between allocation and use;
// StartCluster retries on that.
type portAllocator struct {
	mu    sync.Mutex
	given map[int]bool
}

var ports = &portAllocator{given: map[int]bool{}}

// lowestPort is where the allocator's range starts; it ends below the
// ephemeral range.
const lowestPort = 10000

func (p *portAllocator) get() (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	hi := ephemeralLow()
	if hi-lowestPort < 1000 {
		return p.fromKernel()
	}
	for range 1000 {
		port := lowestPort + rand.IntN(hi-lowestPort)
		if p.given[port] {
			continue
		}
		l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port))
		if err != nil {
			continue
		}
		_ = l.Close()
		p.given[port] = true
		return port, nil
	}
	return 0, fmt.Errorf("find a free loopback port in [%d, %d): none of 1,000 tried was free", lowestPort, hi)
}

// fromKernel asks the kernel for a port (in its ephemeral range), for a
// machine whose ephemeral range leaves too little room below it.
func (p *portAllocator) fromKernel() (int, error) {
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

// ephemeralLow is the first port of the kernel's ephemeral range (Linux's
// default where it cannot be read).
func ephemeralLow() int {
	raw, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return 32768
	}
	fields := strings.Fields(string(raw))
	if len(fields) == 0 {
		return 32768
	}
	low, err := strconv.Atoi(fields[0])
	if err != nil {
		return 32768
	}
	return low
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
