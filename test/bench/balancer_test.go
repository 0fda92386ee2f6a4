package bench

import (
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// tcpBalancer stands in for the Service agents reach the hub replicas
// through (fleetpulse-hub-agents): it accepts connections on a loopback
// port and passes each to the next replica in turn, bytes only, so that
// TLS runs between the agent and the replica. A replica that refuses the
// connection (killed) is skipped, as kube-proxy skips an endpoint that is
// no longer ready.
type tcpBalancer struct {
	ln       net.Listener
	backends []string
	next     atomic.Uint64
	wg       sync.WaitGroup
	mu       sync.Mutex
	conns    map[net.Conn]struct{}
	closed   bool
}

func newTCPBalancer(backends []string) (*tcpBalancer, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	lb := &tcpBalancer{ln: ln, backends: backends, conns: map[net.Conn]struct{}{}}
	lb.wg.Add(1)
	go lb.serve()
	return lb, nil
}

func (lb *tcpBalancer) Addr() string { return lb.ln.Addr().String() }

func (lb *tcpBalancer) serve() {
	defer lb.wg.Done()
	for {
		c, err := lb.ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			time.Sleep(10 * time.Millisecond) // out of files: let connections close
			continue
		}
		lb.wg.Add(1)
		go func() {
			defer lb.wg.Done()
			lb.pass(c)
		}()
	}
}

// pass connects c to a backend, trying each once from the next in turn.
func (lb *tcpBalancer) pass(c net.Conn) {
	start := lb.next.Add(1)
	var up net.Conn
	for i := range lb.backends {
		addr := lb.backends[(int(start)+i)%len(lb.backends)]
		var err error
		if up, err = net.DialTimeout("tcp", addr, 5*time.Second); err == nil {
			break
		}
	}
	if up == nil || !lb.track(c, up) {
		c.Close()
		if up != nil {
			up.Close()
		}
		return
	}
	defer lb.untrack(c, up)
	done := make(chan struct{}, 2)
	cp := func(dst, src net.Conn) {
		_, _ = io.Copy(dst, src)
		// Half-close, so that the other direction finishes its answer.
		if tc, ok := dst.(*net.TCPConn); ok {
			_ = tc.CloseWrite()
		}
		done <- struct{}{}
	}
	go cp(up, c)
	go cp(c, up)
	<-done
	<-done
}

func (lb *tcpBalancer) track(cs ...net.Conn) bool {
	lb.mu.Lock()
	defer lb.mu.Unlock()
	if lb.closed {
		return false
	}
	for _, c := range cs {
		lb.conns[c] = struct{}{}
	}
	return true
}

func (lb *tcpBalancer) untrack(cs ...net.Conn) {
	lb.mu.Lock()
	defer lb.mu.Unlock()
	for _, c := range cs {
		c.Close()
		delete(lb.conns, c)
	}
}

// Close stops accepting and drops every connection.
func (lb *tcpBalancer) Close() {
	lb.mu.Lock()
	lb.closed = true
	for c := range lb.conns {
		c.Close()
	}
	lb.mu.Unlock()
	lb.ln.Close()
	lb.wg.Wait()
}
