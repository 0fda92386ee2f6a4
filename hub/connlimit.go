package hub

import (
	"math"
	"net"
	"net/http"
	"syscall"

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
// bound) and counts them on srv, as fleetpulse_hub_agent_connections beside
// the limit.
func connectionLimit(ln net.Listener, srv *http.Server, limit int, reg prometheus.Registerer) net.Listener {
	open := promauto.With(reg).NewGauge(prometheus.GaugeOpts{
		Name: "fleetpulse_hub_agent_connections", Help: "Agent connections open.",
	})
	promauto.With(reg).NewGauge(prometheus.GaugeOpts{
		Name: "fleetpulse_hub_agent_connections_limit", Help: "Agent connections the hub accepts at once (0: no limit); more wait to be accepted.",
	}).Set(float64(limit))
	srv.ConnState = func(_ net.Conn, state http.ConnState) {
		switch state {
		case http.StateNew:
			open.Inc()
		case http.StateClosed, http.StateHijacked:
			open.Dec()
		}
	}
	if limit <= 0 {
		return ln
	}
	return netutil.LimitListener(ln, limit)
}
