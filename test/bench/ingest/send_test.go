package ingest

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"
)

// maxSkew bounds how many steps one sender may run ahead of the slowest.
// Unbounded, a fast sender could push the head's newest time more than an
// hour (half the block range) past a slow one's samples, which Prometheus
// and Thanos then refuse as out of bounds; real agents are never that far
// apart.
const maxSkew = 4

// sendStats is what one send saw.
type sendStats struct {
	requests, rejected int
	errs               []string // the first few refusals, verbatim
	wall               time.Duration
}

// send posts steps [from, to) of every sender to t, each sender's requests
// in order on its own connection (clients[i] is sender i's), all senders at
// once, as remote write 2.0 if v2. Refusals are counted, not retried.
func send(ctx context.Context, t *target, l *load, clients []*http.Client, from, to int, v2 bool) sendStats {
	bodies, proto := l.bodies, rw1
	if v2 {
		bodies, proto = l.bodiesV2, rw2
	}
	var (
		mu    sync.Mutex
		stats sendStats
		g     = newGate(len(clients), from, to)
		wg    sync.WaitGroup
	)
	begin := time.Now()
	for c := range clients {
		wg.Go(func() {
			for s := from; s < to; s++ {
				g.wait(s - maxSkew)
				for r, body := range bodies[c][s] {
					err := post(ctx, clients[c], t.writeURL, body, proto)
					mu.Lock()
					stats.requests++
					if err != nil {
						stats.rejected++
						if len(stats.errs) < 5 {
							stats.errs = append(stats.errs, fmt.Sprintf("sender %d step %d request %d: %v", c, s, r, err))
						}
					}
					mu.Unlock()
				}
				g.done(s)
			}
		})
	}
	wg.Wait()
	stats.wall = time.Since(begin)
	return stats
}

// protocol is a remote-write version's content type and version header.
type protocol struct{ contentType, version string }

var (
	rw1 = protocol{"application/x-protobuf", "0.1.0"}
	rw2 = protocol{"application/x-protobuf;proto=io.prometheus.write.v2.Request", "2.0.0"}
)

// post sends one remote-write request; anything but 2xx is a refusal.
func post(ctx context.Context, c *http.Client, url string, body []byte, p protocol) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", p.contentType)
	req.Header.Set("Content-Encoding", "snappy")
	req.Header.Set("X-Prometheus-Remote-Write-Version", p.version)
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	_ = resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("%s: %s", resp.Status, bytes.TrimSpace(msg))
	}
	return nil
}

// gate lets a sender start step s once every sender has finished step
// s-maxSkew, counting from the send's first step.
type gate struct {
	mu       sync.Mutex
	cond     *sync.Cond
	from     int
	finished []int // senders done with each step, from from
	senders  int
}

func newGate(senders, from, to int) *gate {
	g := &gate{from: from, finished: make([]int, to-from), senders: senders}
	g.cond = sync.NewCond(&g.mu)
	return g
}

func (g *gate) wait(step int) {
	if step < g.from {
		return
	}
	g.mu.Lock()
	for g.finished[step-g.from] < g.senders {
		g.cond.Wait()
	}
	g.mu.Unlock()
}

func (g *gate) done(step int) {
	g.mu.Lock()
	g.finished[step-g.from]++
	if g.finished[step-g.from] == g.senders {
		g.cond.Broadcast()
	}
	g.mu.Unlock()
}
