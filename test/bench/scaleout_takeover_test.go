package bench

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/fleetpulse/fleetpulse/hub/metricstore"
	"github.com/fleetpulse/fleetpulse/test/bench/fleetsim"
)

// takeoverFigures are what killing one replica cost its clusters.
type takeoverFigures struct {
	victim   string
	clusters int
	// heartbeat and write are, per cluster of the killed replica, the time
	// from the kill to the first heartbeat (write) another replica
	// acknowledged, sorted.
	heartbeat, write []time.Duration
	// unknown is how many of its clusters went Unknown on the control plane
	// after the kill; available the time from the kill until all of them
	// were Available again (0 when none left it).
	unknown   int
	available time.Duration
	// missed is how many did not land at another replica by the deadline.
	missed int
}

// waitRing polls every replica's ring page until each lists n replicas.
func waitRing(b *testing.B, ctx context.Context, hubs []*hubProc, n int) {
	b.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		missing := ""
		for _, h := range hubs {
			page, err := httpGet(ctx, "http://"+h.http+"/ring")
			if err != nil {
				missing = fmt.Sprintf("%s: %v", h.name, err)
				break
			}
			for _, o := range hubs[:n] {
				if !strings.Contains(page, o.name) {
					missing = fmt.Sprintf("%s does not list %s", h.name, o.name)
				}
			}
		}
		if missing == "" {
			return
		}
		if time.Now().After(deadline) {
			b.Fatalf("ring not formed within 1m: %s", missing)
		}
		select {
		case <-ctx.Done():
			b.Fatal(ctx.Err())
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func httpGet(ctx context.Context, url string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return "", err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return string(body), err
}

// takeOver kills one replica with SIGKILL and times its clusters' move to
// the others: their heartbeats and writes acknowledged elsewhere, and their
// availability on the control plane.
func takeOver(b *testing.B, ctx context.Context, o scaleOutOptions, p *phase) takeoverFigures {
	b.Helper()
	var victim *hubProc
	for _, h := range p.hubs {
		leads := hubMetrics(b, "http://"+h.http)["fleetpulse_hub_controllers_leader"] == 1
		if leads == o.killLeader {
			victim = h
			break
		}
	}
	if victim == nil {
		b.Fatalf("no replica with leader=%v to kill", o.killLeader)
	}
	// Its clusters: those whose series carry its replica label, read
	// through another replica's /api/v1. (The agents' calls land through
	// the balancer, so the host that answered does not name the replica.)
	var reader *hubProc
	for _, h := range p.hubs {
		if h != victim {
			reader = h
			break
		}
	}
	names, err := newPromEndpoint(reader.name, "http://"+reader.http).labelValues(ctx, "cluster",
		`k8s_cluster_info{`+metricstore.DefaultReplicaLabel+`="`+victim.name+`"}`, time.Now())
	if err != nil {
		b.Fatal(err)
	}
	mine := map[string]bool{}
	for _, name := range names {
		mine[name] = true
	}
	f := takeoverFigures{victim: victim.name, clusters: len(mine)}
	if len(mine) == 0 {
		b.Fatalf("%s owns no cluster", victim.name)
	}
	unknownBefore := map[string]int{}
	p.avail.mu.Lock()
	for name := range mine {
		unknownBefore[name] = len(p.avail.unknownAt[name])
	}
	p.avail.mu.Unlock()

	killed := time.Now()
	if err := victim.kill(); err != nil {
		b.Fatalf("kill %s: %v", victim.name, err)
	}
	progressf("killed %s (leader: %v), which held %d clusters; load average %s", victim.name, o.killLeader, len(mine), loadAverage())
	beat, wrote := map[string]time.Duration{}, map[string]time.Duration{}
	deadline := killed.Add(2*o.period + 2*time.Minute)
	for len(beat) < len(mine) || len(wrote) < len(mine) {
		if time.Now().After(deadline) {
			break
		}
		select {
		case <-ctx.Done():
			b.Fatal(ctx.Err())
		case <-time.After(250 * time.Millisecond):
		}
		for name, l := range p.fleet.Landings() {
			if !mine[name] {
				continue
			}
			// Acknowledged after the kill: by another replica.
			if _, ok := beat[name]; !ok && l.HeartbeatAt.After(killed) {
				beat[name] = l.HeartbeatAt.Sub(killed)
			}
			if _, ok := wrote[name]; !ok && l.WriteAt.After(killed) {
				wrote[name] = l.WriteAt.Sub(killed)
			}
		}
	}
	f.missed = len(mine) - min(len(beat), len(wrote))
	for _, d := range beat {
		f.heartbeat = append(f.heartbeat, d)
	}
	for _, d := range wrote {
		f.write = append(f.write, d)
	}
	slices.Sort(f.heartbeat)
	slices.Sort(f.write)

	// Availability: its clusters stay Available if the others take them
	// over within the grace; those that went Unknown must come back.
	allAvailable := func(a *availability) bool {
		for name := range mine {
			if a.status[name] != "True" {
				return false
			}
		}
		return true
	}
	if !p.avail.waitFor(ctx, time.Now().Add(time.Duration(o.grace)*o.period+time.Minute), allAvailable) {
		b.Errorf("not all of %s's %d clusters Available again", victim.name, len(mine))
	}
	back := time.Since(killed)
	p.avail.mu.Lock()
	for name := range mine {
		if len(p.avail.unknownAt[name]) > unknownBefore[name] {
			f.unknown++
		}
	}
	p.avail.mu.Unlock()
	if f.unknown > 0 {
		f.available = back
	}
	progressf("takeover of %s's %d clusters: heartbeat acknowledged elsewhere p50 %s, p99 %s, max %s; write p50 %s, p99 %s, max %s; %d not moved; %d went Unknown",
		victim.name, len(mine), pctS(f.heartbeat, 50), pctS(f.heartbeat, 99), pctS(f.heartbeat, 100),
		pctS(f.write, 50), pctS(f.write, 99), pctS(f.write, 100), f.missed, f.unknown)
	if f.missed > 0 {
		b.Errorf("%d of %s's %d clusters not acknowledged by another replica within %s", f.missed, victim.name, len(mine), deadline.Sub(killed))
	}
	return f
}

func pctS(sorted []time.Duration, q float64) time.Duration {
	return fleetsim.Percentile(sorted, q).Round(10 * time.Millisecond)
}

func reportTakeover(b *testing.B, runs []scaleOutRun) {
	var beat, write []time.Duration
	unknown, missed, clusters := 0, 0, 0
	for _, r := range runs {
		beat, write = append(beat, r.takeover.heartbeat...), append(write, r.takeover.write...)
		unknown, missed, clusters = unknown+r.takeover.unknown, missed+r.takeover.missed, clusters+r.takeover.clusters
	}
	slices.Sort(beat)
	slices.Sort(write)
	n := float64(len(runs))
	b.ReportMetric(float64(clusters)/n, "takeover-clusters")
	b.ReportMetric(fleetsim.Percentile(beat, 50).Seconds(), "takeover-heartbeat-p50-s")
	b.ReportMetric(fleetsim.Percentile(beat, 99).Seconds(), "takeover-heartbeat-p99-s")
	b.ReportMetric(fleetsim.Percentile(beat, 100).Seconds(), "takeover-heartbeat-max-s")
	b.ReportMetric(fleetsim.Percentile(write, 50).Seconds(), "takeover-write-p50-s")
	b.ReportMetric(fleetsim.Percentile(write, 99).Seconds(), "takeover-write-p99-s")
	b.ReportMetric(fleetsim.Percentile(write, 100).Seconds(), "takeover-write-max-s")
	b.ReportMetric(float64(unknown)/n, "takeover-unknown")
	back := 0.0
	for _, r := range runs {
		back += r.takeover.available.Seconds() / n
	}
	b.ReportMetric(back, "takeover-available-again-s")
	b.ReportMetric(float64(missed)/n, "takeover-missed")
}
