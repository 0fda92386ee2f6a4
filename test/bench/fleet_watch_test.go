package bench

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"

	fleetv1 "github.com/fleetpulse/fleetpulse/api/v1alpha1"
	"github.com/fleetpulse/fleetpulse/hub/controlplane"
)

// availability follows every ManagedCluster's Available condition through
// a watch on the hub's control plane, as any controller of the fleet would
// see it, and notes when each cluster went from True to Unknown.
type availability struct {
	mu        sync.Mutex
	status    map[string]metav1.ConditionStatus
	available int
	// unknownAt holds, per cluster, the times (of the watch event) it went
	// from True to Unknown.
	unknownAt map[string][]time.Time
	// availableAt is when each cluster was first seen Available.
	availableAt map[string]time.Time
	changed     chan struct{}
}

func watchAvailability(b *testing.B, ctx context.Context, cfg *rest.Config) *availability {
	b.Helper()
	ctrllog.SetLogger(logr.Discard()) // the watch's own logs are not wanted
	cfg = rest.CopyConfig(cfg)
	cfg.QPS, cfg.Burst = 200, 400
	c, err := cache.New(cfg, cache.Options{Scheme: controlplane.Scheme()})
	if err != nil {
		b.Fatal(err)
	}
	inf, err := c.GetInformer(ctx, &fleetv1.ManagedCluster{})
	if err != nil {
		b.Fatal(err)
	}
	a := &availability{status: map[string]metav1.ConditionStatus{}, unknownAt: map[string][]time.Time{}, availableAt: map[string]time.Time{}, changed: make(chan struct{}, 1)}
	if _, err := inf.AddEventHandler(toolscache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { a.observe(obj) },
		UpdateFunc: func(_, obj any) { a.observe(obj) },
	}); err != nil {
		b.Fatal(err)
	}
	go func() { _ = c.Start(ctx) }()
	if !c.WaitForCacheSync(ctx) {
		b.Fatal("ManagedCluster cache did not sync")
	}
	return a
}

func (a *availability) observe(obj any) {
	now := time.Now()
	mc, ok := obj.(*fleetv1.ManagedCluster)
	if !ok {
		return
	}
	var st metav1.ConditionStatus
	if c := meta.FindStatusCondition(mc.Status.Conditions, fleetv1.ConditionAvailable); c != nil {
		st = c.Status
	}
	a.mu.Lock()
	prev := a.status[mc.Name]
	if prev != st {
		a.status[mc.Name] = st
		if st == metav1.ConditionTrue {
			a.available++
			if _, ok := a.availableAt[mc.Name]; !ok {
				a.availableAt[mc.Name] = now
			}
		}
		if prev == metav1.ConditionTrue {
			a.available--
			if st == metav1.ConditionUnknown {
				a.unknownAt[mc.Name] = append(a.unknownAt[mc.Name], now)
			}
		}
	}
	a.mu.Unlock()
	if prev != st {
		select {
		case a.changed <- struct{}{}:
		default:
		}
	}
}

// waitFor polls cond on every change, until it holds or the deadline.
func (a *availability) waitFor(ctx context.Context, deadline time.Time, cond func(a *availability) bool) bool {
	t := time.NewTimer(time.Until(deadline))
	defer t.Stop()
	for {
		a.mu.Lock()
		ok := cond(a)
		a.mu.Unlock()
		if ok {
			return true
		}
		select {
		case <-a.changed:
		case <-t.C:
			a.mu.Lock()
			defer a.mu.Unlock()
			return cond(a)
		case <-ctx.Done():
			return false
		}
	}
}

// firstUnknownAfter is when the cluster first went Unknown after t.
func (a *availability) firstUnknownAfter(name string, t time.Time) (time.Time, bool) {
	for _, at := range a.unknownAt[name] {
		if at.After(t) {
			return at, true
		}
	}
	return time.Time{}, false
}

func (a *availability) availableNow() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.available
}

// unknownCount is how many True→Unknown transitions there were.
func (a *availability) unknownCount() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	n := 0
	for _, ts := range a.unknownAt {
		n += len(ts)
	}
	return n
}

// procCPUSeconds is a process's CPU time so far: utime+stime of all its
// threads, from /proc/<pid>/stat.
func procCPUSeconds(pid int) (float64, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The command name, field 2, is in parentheses and may hold spaces;
	// utime and stime are fields 14 and 15, the 12th and 13th after it.
	s := string(data)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(f) < 13 {
		return 0, fmt.Errorf("short /proc/%d/stat %q", pid, s)
	}
	utime, err1 := strconv.ParseFloat(f[11], 64)
	stime, err2 := strconv.ParseFloat(f[12], 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("/proc/%d/stat %q: %v %v", pid, s, err1, err2)
	}
	return (utime + stime) / fleetClockTicks, nil
}

// fleetClockTicks is USER_HZ, the unit of utime and stime in /proc/<pid>/stat.
const fleetClockTicks = 100

// procStatus reads a kB field (VmRSS, VmHWM, …) of /proc/<pid>/status, in bytes.
func procStatus(pid int, field string) (float64, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for line := range strings.Lines(string(data)) {
		if rest, ok := strings.CutPrefix(line, field+":"); ok {
			kb, err := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 64)
			if err != nil {
				return 0, fmt.Errorf("%s %q: %w", field, rest, err)
			}
			return kb * 1024, nil
		}
	}
	return 0, fmt.Errorf("no %s in /proc/%d/status", field, pid)
}

// openFDs counts a process's open file descriptors.
func openFDs(pid int) int {
	entries, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		return -1
	}
	return len(entries)
}

// fdKinds groups a process's open file descriptors by what they are:
// sockets, pipes, and files by the folder that holds them (wal, chunks_head,
// …) or their name.
func fdKinds(pid int) map[string]int {
	dir := fmt.Sprintf("/proc/%d/fd", pid)
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil
	}
	out := map[string]int{}
	for _, e := range entries {
		target, err := os.Readlink(dir + "/" + e.Name())
		if err != nil {
			continue
		}
		kind := target
		switch {
		case strings.HasPrefix(target, "socket:"):
			kind = "socket"
		case strings.HasPrefix(target, "pipe:"):
			kind = "pipe"
		case strings.HasPrefix(target, "anon_inode:"):
			kind = target
		default:
			parts := strings.Split(target, "/")
			kind = parts[len(parts)-1]
			if len(parts) > 1 {
				if parent := parts[len(parts)-2]; parent == "wal" || parent == "wbl" || parent == "chunks_head" || parent == "chunks" {
					kind = parent + "/*"
				} else if strings.HasPrefix(kind, "0") {
					kind = parent + "/*"
				}
			}
		}
		out[kind]++
	}
	return out
}

// openFileLimit is a process's soft limit of open files, -1 if unknown.
func openFileLimit(pid int) int {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/limits", pid))
	if err != nil {
		return -1
	}
	for line := range strings.Lines(string(data)) {
		if rest, ok := strings.CutPrefix(line, "Max open files"); ok {
			if f := strings.Fields(rest); len(f) > 0 {
				if n, err := strconv.Atoi(f[0]); err == nil {
					return n
				}
			}
		}
	}
	return -1
}

// memAvailable is the machine's MemAvailable, in bytes.
func memAvailable() float64 {
	data, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return -1
	}
	for line := range strings.Lines(string(data)) {
		if rest, ok := strings.CutPrefix(line, "MemAvailable:"); ok {
			kb, _ := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 64)
			return kb * 1024
		}
	}
	return -1
}

// cpuMeter measures processes' CPU over a window, in cores.
type cpuMeter struct {
	start   time.Time
	seconds map[string]float64
	pids    map[string]int
}

func startCPU(pids map[string]int) *cpuMeter {
	m := &cpuMeter{start: time.Now(), seconds: map[string]float64{}, pids: pids}
	for name, pid := range pids {
		m.seconds[name], _ = procCPUSeconds(pid)
	}
	return m
}

// cores returns each process's mean cores since start.
func (m *cpuMeter) cores() map[string]float64 {
	el := time.Since(m.start).Seconds()
	out := map[string]float64{}
	for name, pid := range m.pids {
		now, err := procCPUSeconds(pid)
		if err != nil {
			continue
		}
		out[name] = (now - m.seconds[name]) / el
	}
	return out
}
