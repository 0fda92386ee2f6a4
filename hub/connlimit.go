package hub

import (
	"fmt"
	"math"
	"net"
	"net/http"
	"sync"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"golang.org/x/net/netutil"
)

// Open files the hub keeps for itself, whatever the agents hold: every
// shard's TSDB files (lock, WAL and WBL segments, head chunks, and 2 per
// block), the control plane's and Alertmanager's connections, users' HTTP
// clients, the log.
const (
	reservedFiles         = 1024
	reservedFilesPerShard = 32
)

// agentConnectionLimit is how many agent connections the hub accepts at
// once: the configured number, or (0) the process's open-file limit less
// what the hub keeps for itself. Past the limit a TSDB could not open its
// next file, and Prometheus's head-chunk mapper panics when it cannot; a
// limited listener instead leaves further agents waiting in the accept
// queue (they time out and retry) until a connection closes. 0 means none.
func agentConnectionLimit(configured, shards int) int {
	if configured > 0 {
		return configured
	}
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil || rl.Cur > math.MaxInt32 {
		return 0
	}
	return max(int(rl.Cur)-reservedFiles-reservedFilesPerShard*shards, 64)
}

// connectionLimit bounds a listener's open connections to limit (0: no
// bound) and counts them on srv, as fleetpulse_hub_<port>_connections beside
// the limit. Past the limit connections wait to be accepted.
func connectionLimit(ln net.Listener, srv *http.Server, port string, limit int, reg prometheus.Registerer) net.Listener {
	open := promauto.With(reg).NewGauge(prometheus.GaugeOpts{
		Name: "fleetpulse_hub_" + port + "_connections", Help: "Connections open on the " + port + " port.",
	})
	promauto.With(reg).NewGauge(prometheus.GaugeOpts{
		Name: "fleetpulse_hub_" + port + "_connections_limit",
		Help: "Connections the " + port + " port accepts at once (0: no limit); more wait to be accepted.",
	}).Set(float64(limit))
	accepted := promauto.With(reg).NewCounter(prometheus.CounterOpts{
		Name: "fleetpulse_hub_" + port + "_connections_accepted_total", Help: "Connections accepted on the " + port + " port.",
	})
	srv.ConnState = func(_ net.Conn, state http.ConnState) {
		switch state {
		case http.StateNew:
			open.Inc()
			accepted.Inc()
		case http.StateClosed, http.StateHijacked:
			open.Dec()
		}
	}
	if limit <= 0 {
		return ln
	}
	return netutil.LimitListener(ln, limit)
}

// sourceLimit refuses a connection at once when its source address already
// holds limit connections, so that one client (a flood of idle keep-alive
// connections, say) cannot take every place of the port's connection limit
// from the others. A refused plain-HTTP connection is told why in a 429
// answer; a TLS one is closed (nothing readable can be said before the
// handshake). It wraps the listener inside the overall limit: a refused
// connection never holds one of its places.
func sourceLimit(ln net.Listener, port string, limit int, tlsPort bool, reg prometheus.Registerer) net.Listener {
	l := &sourceLimitListener{
		Listener: ln, limit: limit, open: map[string]int{},
		refused: promauto.With(reg).NewCounter(prometheus.CounterOpts{
			Name: "fleetpulse_hub_" + port + "_connections_refused_total",
			Help: "Connections to the " + port + " port refused because their source address held its limit of connections.",
		}),
	}
	if !tlsPort {
		msg := fmt.Sprintf("too many connections from your address: the limit is %d per source (--web.max-connections-per-source)\n", limit)
		l.answer = []byte(fmt.Sprintf("HTTP/1.1 429 Too Many Requests\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s", len(msg), msg))
	}
	return l
}

type sourceLimitListener struct {
	net.Listener
	limit   int
	answer  []byte
	refused prometheus.Counter

	mu   sync.Mutex
	open map[string]int
}

func (l *sourceLimitListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		src := sourceOf(c.RemoteAddr())
		l.mu.Lock()
		if l.open[src] >= l.limit {
			l.mu.Unlock()
			l.refused.Inc()
			if l.answer != nil {
				// A new socket's send buffer is empty: the write does not
				// wait on the client, and the deadline makes sure of it.
				_ = c.SetWriteDeadline(time.Now().Add(100 * time.Millisecond))
				_, _ = c.Write(l.answer)
			}
			_ = c.Close()
			continue
		}
		l.open[src]++
		l.mu.Unlock()
		return &sourceConn{Conn: c, release: func() { l.release(src) }}, nil
	}
}

func (l *sourceLimitListener) release(src string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.open[src]--; l.open[src] <= 0 {
		delete(l.open, src)
	}
}

// sourceOf is the address a connection comes from, without its port.
func sourceOf(a net.Addr) string {
	if tcp, ok := a.(*net.TCPAddr); ok {
		return tcp.IP.String()
	}
	host, _, err := net.SplitHostPort(a.String())
	if err != nil {
		return a.String()
	}
	return host
}

// sourceConn gives its source's place back once, when it closes.
type sourceConn struct {
	net.Conn
	once    sync.Once
	release func()
}

func (c *sourceConn) Close() error {
	c.once.Do(c.release)
	return c.Conn.Close()
}
