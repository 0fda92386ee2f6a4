package ingest

import (
	"context"
	"fmt"
	"math"
	"net/http"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang/snappy"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/prompb"
	writev2 "github.com/prometheus/prometheus/prompb/io/prometheus/write/v2"

	"github.com/fleetpulse/fleetpulse/hub/limits"
	"github.com/fleetpulse/fleetpulse/hub/metricstore"
)

// TestClustersWritingTheSameBytesKeepTheirOwnSeries: two clusters sending
// byte-identical requests, again and again (the second time and after
// served from each cluster's cache of series), each store their samples
// in their own series only.
func TestClustersWritingTheSameBytesKeepTheirOwnSeries(t *testing.T) {
	t.Parallel()
	h := startHandler(t, nil)
	t0 := time.Now().Add(-5 * time.Minute).Truncate(time.Second)
	for step := range 3 {
		ts := t0.Add(time.Duration(step) * time.Second).UnixMilli()
		for i, cluster := range []string{"cluster-a", "cluster-b"} {
			// The same labels, each cluster its own value: a sample
			// stored in the other cluster's series shows.
			body := rw1Body(t, series("shared", []prompb.Sample{{Timestamp: ts, Value: float64(i + 1)}}, "cluster", "cluster-a", "job", "j"))
			if code, msg := h.write(t, cluster, body, nil); code != http.StatusNoContent {
				t.Fatalf("step %d, %s: %d %s", step, cluster, code, msg)
			}
		}
	}
	at := t0.Add(2 * time.Second)
	for _, q := range []struct{ query, want string }{
		{`count_over_time(shared{cluster="cluster-a"}[10s])`, "3"},
		{`count_over_time(shared{cluster="cluster-b"}[10s])`, "3"},
		{`max_over_time(shared{cluster="cluster-a"}[10s])`, "1"},
		{`min_over_time(shared{cluster="cluster-b"}[10s])`, "2"},
	} {
		if got := h.query(t, q.query, at); !strings.Contains(got, "=> "+q.want+" @") {
			t.Errorf("%s = %s, want %s", q.query, got, q.want)
		}
	}
}

// TestKeptReferencesOutliveTheSeries: the head drops a series that stopped
// (its samples cut into a block); written again, through a reference kept
// from before, it is stored as itself, beside a series created meanwhile,
// with the answers Prometheus's handler gives. A reference the cache still
// holds when the head has dropped its series (as after an out-of-order
// head truncation, which leaves the head's epoch as it was) is appended by
// its stored labels.
func TestKeptReferencesOutliveTheSeries(t *testing.T) {
	t.Parallel()
	for _, stale := range []bool{false, true} {
		t.Run(fmt.Sprintf("references kept over the truncation %v", stale), func(t *testing.T) {
			t.Parallel()
			fastStore, promStore := openStore(t, 0, nil), openStore(t, 0, nil)
			fast, prom := newTestHandler(fastStore, true), newTestHandler(promStore, false)
			t0 := time.Now().Add(-3 * time.Hour).Truncate(time.Hour).UnixMilli()
			write := func(ts ...prompb.TimeSeries) {
				t.Helper()
				body := rw1Body(t, ts...)
				got, want := post(fast, body, nil), post(prom, body, nil)
				if got.code != want.code || got.body != want.body || got.code != http.StatusNoContent {
					t.Fatalf("answer %d %q, Prometheus's handler %d %q", got.code, got.body, want.code, want.body)
				}
			}
			at := func(ms int64, v float64) []prompb.Sample { return []prompb.Sample{{Timestamp: t0 + ms, Value: v}} }
			write(series("stopping", at(0, 1), "job", "a"), series("going_on", at(0, 1), "job", "a"))
			write(series("stopping", at(1000, 2), "job", "a"), series("going_on", at(1000, 2), "job", "a"))
			cache, before := fast.refs.forCluster(testCluster)
			// Only going_on goes on, past the head's block range, so that a
			// flush cuts stopping into a block and drops it from the head.
			for i := range 5 {
				write(series("going_on", at(int64(i+2)*time.Hour.Milliseconds()/2, float64(i+3)), "job", "a"))
			}
			for _, s := range []interface{ Flush(context.Context) error }{fastStore, promStore} {
				if err := s.Flush(context.Background()); err != nil {
					t.Fatal(err)
				}
			}
			after, _ := fastStore.HeadEpoch(testCluster)
			if after == before {
				t.Fatal("the head's epoch did not move on with the truncation")
			}
			if stale {
				// Keep the references from before the truncation.
				cache.mu.Lock()
				cache.epoch = after
				cache.mu.Unlock()
			}
			late := 3 * time.Hour.Milliseconds()
			write(series("created_meanwhile", at(late, 1), "job", "a"))
			write(series("stopping", at(late, 7), "job", "a"), series("going_on", at(late, 7), "job", "a"))
			got, want := dump(t, fastStore), dump(t, promStore)
			if got != want {
				t.Errorf("stored through rw1.go:\n%s\nthrough Prometheus's handler:\n%s", got, want)
			}
			wantStopping := fmt.Sprintf(`{__name__="stopping", cluster="cluster-a", job="a"} %d=%d %d=%d %d=%d`,
				t0, math.Float64bits(1), t0+1000, math.Float64bits(2), t0+late, math.Float64bits(7))
			if !strings.Contains(got, wantStopping+"\n") {
				t.Errorf("stored:\n%s\nwant the line\n%s", got, wantStopping)
			}
		})
	}
}

// TestLoweredLimitsRefuseKnownSeries: limits lowered while a cluster
// writes refuse its known series (which the cache resolves without reading
// their labels) as they refuse new ones.
func TestLoweredLimitsRefuseKnownSeries(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ name, limit, msg string }{
		{"label name", "label_name_length: 8", `a series of metric "m" has a label name of 10 bytes ("label_name"), over the label_name_length limit of 8`},
		{"label value", "label_value_length: 32", `a series of metric "m" has a value of 40 bytes for label "label_name", over the label_value_length limit of 32`},
		{"labels", "labels_per_series: 2", `a series of metric "m" has 3 labels, over the labels_per_series limit of 2`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			lim, err := limits.New(limits.Options{})
			if err != nil {
				t.Fatal(err)
			}
			h := newHandler(openStore(t, 0, nil), Options{Limits: lim})
			t0 := time.Now().Add(-time.Minute).UnixMilli()
			body := func(step int64) []byte {
				return rw1Body(t, series("m", []prompb.Sample{{Timestamp: t0 + step, Value: 1}}, "job", "j", "label_name", strings.Repeat("v", 40)))
			}
			for step := range int64(2) {
				if a := post(h, body(step), nil); a.code != http.StatusNoContent {
					t.Fatalf("step %d: %d %s", step, a.code, a.body)
				}
			}
			cfg, err := limits.Parse([]byte("clusters:\n  " + testCluster + ":\n    " + tc.limit + "\n"))
			if err != nil {
				t.Fatal(err)
			}
			lim.Apply(cfg)
			if a := post(h, body(2), nil); a.code != http.StatusBadRequest || !strings.Contains(a.body, tc.msg) {
				t.Errorf("%d %q, want 400 with %q", a.code, a.body, tc.msg)
			}
		})
	}
}

// FuzzRW1KnownSeriesAnswerAsPrometheus: a remote write 1.0 request sent
// three times (the last time at least its series are known, and resolved
// by the cluster's cache) gets the answers Prometheus's handler gives each
// time, and the same data is stored.
func FuzzRW1KnownSeriesAnswerAsPrometheus(f *testing.F) {
	t0 := time.Now().Add(-time.Minute).UnixMilli()
	for _, ts := range [][]prompb.TimeSeries{
		{series("up", []prompb.Sample{{Timestamp: t0, Value: 1}}, "job", "a"), series("up", []prompb.Sample{{Timestamp: t0, Value: 2}}, "cluster", "x", "job", "b")},
		{{Labels: []prompb.Label{{Name: "zone", Value: "z"}, {Name: "__name__", Value: "unsorted"}}, Samples: []prompb.Sample{{Timestamp: t0, Value: 1}}}},
		{series("two", []prompb.Sample{{Timestamp: t0, Value: 1}, {Timestamp: t0 + 1000, Value: 2}}, "job", "a"), series("no_samples", nil, "job", "a")},
		{series("dup", []prompb.Sample{{Timestamp: t0, Value: 1}}, "job", "a", "job", "b")},
	} {
		f.Add(rw1Proto(f, &prompb.WriteRequest{Timeseries: ts}))
	}
	fuzzKnownSeries(f, nil)
}

// FuzzRW2KnownSeriesAnswerAsPrometheus is FuzzRW1KnownSeriesAnswerAsPrometheus
// for remote write 2.0, where known series are resolved by their symbols'
// keys.
func FuzzRW2KnownSeriesAnswerAsPrometheus(f *testing.F) {
	t0 := time.Now().Add(-time.Minute).UnixMilli()
	for _, req := range []*writev2.Request{
		{Symbols: []string{"", "__name__", "up", "job", "a", "cluster", "x", "help"}, Timeseries: []writev2.TimeSeries{
			{LabelsRefs: []uint32{1, 2, 3, 4}, Samples: []writev2.Sample{{Timestamp: t0, Value: 1}},
				Metadata: writev2.Metadata{Type: writev2.Metadata_METRIC_TYPE_GAUGE, HelpRef: 7}},
			{LabelsRefs: []uint32{1, 2, 5, 6, 3, 4}, Samples: []writev2.Sample{{Timestamp: t0, Value: 2}, {Timestamp: t0 + 1000, Value: 3}}},
		}},
		// The same series twice, its labels in two orders; and a label
		// name twice, which Prometheus's handler skips.
		{Symbols: []string{"", "zone", "z", "__name__", "unsorted"}, Timeseries: []writev2.TimeSeries{
			{LabelsRefs: []uint32{1, 2, 3, 4}, Samples: []writev2.Sample{{Timestamp: t0, Value: 1}}},
			{LabelsRefs: []uint32{3, 4, 1, 2}, Samples: []writev2.Sample{{Timestamp: t0 + 1000, Value: 2}}},
		}},
		{Symbols: []string{"", "__name__", "dup", "job", "a", "b"}, Timeseries: []writev2.TimeSeries{
			{LabelsRefs: []uint32{1, 2, 3, 4, 3, 5}, Samples: []writev2.Sample{{Timestamp: t0, Value: 1}}},
		}},
	} {
		raw, err := req.Marshal()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(raw)
	}
	fuzzKnownSeries(f, rw2Header)
}

// fuzzKnownSeries posts each input, snappy-compressed with the given
// headers (nil: remote write 1.0's), three times to hub/ingest's paths and
// to Prometheus's handler, each over a store of its own, and fails on any
// difference in the answers or in what the input's cluster stored. Each
// input is another cluster's.
func fuzzKnownSeries(f *testing.F, header map[string]string) {
	open := func() *metricstore.Store {
		return openStore(f, metricstore.DefaultConfig().OutOfOrderWindow, nil, func(c *metricstore.Config) { c.Shards = 1 })
	}
	fastStore, promStore := open(), open()
	fast, prom := newTestHandler(fastStore, true), newTestHandler(promStore, false)
	var inputs atomic.Int64
	f.Fuzz(func(t *testing.T, msg []byte) {
		cluster := fmt.Sprintf("fuzz-%d", inputs.Add(1))
		body := snappy.Encode(nil, msg)
		// A new head's first samples move its epoch on: by the third
		// request the series are resolved by the cache whatever the head.
		for i := range 3 {
			got, want := postAs(fast, cluster, body, header), postAs(prom, cluster, body, header)
			if got.code != want.code || got.body != want.body || !headersEqual(got.header, want.header) {
				t.Fatalf("request %d: answer %d %q, Prometheus's handler %d %q", i, got.code, got.body, want.code, want.body)
			}
		}
		ofCluster := labels.MustNewMatcher(labels.MatchEqual, metricstore.ClusterLabel, cluster)
		if got, want := dumpMatching(t, fastStore, ofCluster), dumpMatching(t, promStore, ofCluster); got != want {
			t.Fatalf("stored through hub/ingest:\n%s\nthrough Prometheus's handler:\n%s", got, want)
		}
	})
}

// TestRW2KnownSeriesResolveWhateverTheSymbolTable: series written once
// over remote write 2.0 are resolved by the cluster's cache in a later
// request whose symbol table lists the same strings in another order; a
// series with one value changed is not; and the samples written through
// the cache land in their own series.
func TestRW2KnownSeriesResolveWhateverTheSymbolTable(t *testing.T) {
	t.Parallel()
	store := openStore(t, 0, nil)
	h := newTestHandler(store, true)
	t0 := time.Now().Add(-time.Minute).Truncate(time.Second).UnixMilli()
	request := func(symbols []string, ts int64, podB string) []byte {
		st := writev2.NewSymbolTable()
		for _, s := range symbols {
			st.Symbolize(s)
		}
		req := &writev2.Request{}
		for i, pod := range []string{"pod-a", podB} {
			req.Timeseries = append(req.Timeseries, writev2.TimeSeries{
				LabelsRefs: []uint32{st.Symbolize("__name__"), st.Symbolize("restarts"), st.Symbolize("pod"), st.Symbolize(pod)},
				Samples:    []writev2.Sample{{Timestamp: ts, Value: float64(i + 1)}},
			})
		}
		req.Symbols = st.Symbols()
		return rw2Marshal(t, req)
	}
	// The head's first samples move its epoch on (metricstore.HeadEpoch):
	// the series are kept from the second write on.
	for step := range int64(2) {
		if a := postAs(h, testCluster, request([]string{"__name__", "restarts", "pod", "pod-a", "pod-b"}, t0+step*1000, "pod-b"), rw2Header); a.code != http.StatusNoContent {
			t.Fatalf("write %d: %d %s", step, a.code, a.body)
		}
	}
	// The same series, the symbols in another order; pod-c is new.
	for _, tc := range []struct {
		podB string
		hits []bool
	}{{"pod-b", []bool{true, true}}, {"pod-c", []bool{true, false}}} {
		body := request([]string{"pod-b", "pod-c", "pod", "pod-a", "restarts", "__name__"}, t0+2000, tc.podB)
		raw, err := snappy.Decode(nil, body)
		if err != nil {
			t.Fatal(err)
		}
		req := rw2Pool.Get().(*rw2Request)
		if !req.decode(raw) || !req.valid() {
			t.Fatal("the request does not decode")
		}
		refs := getResolved()
		cache, _ := h.refs.forCluster(testCluster)
		known, done := cache.known(h.limits.For(context.Background(), testCluster).Bounds(), refs)
		req.resolveKnown(refs, known)
		done()
		if !slices.Equal(refs.hit, tc.hits) {
			t.Errorf("%s: resolved by the cache %v, want %v", tc.podB, refs.hit, tc.hits)
		}
		putResolved(refs)
		req.release()
	}
	if a := postAs(h, testCluster, request([]string{"pod-b", "pod", "pod-a", "restarts", "__name__"}, t0+2000, "pod-b"), rw2Header); a.code != http.StatusNoContent {
		t.Fatalf("write through the cache: %d %s", a.code, a.body)
	}
	var want strings.Builder
	for i, pod := range []string{"pod-a", "pod-b"} {
		v := math.Float64bits(float64(i + 1))
		fmt.Fprintf(&want, "{__name__=\"restarts\", cluster=%q, pod=%q} %d=%d %d=%d %d=%d\n", testCluster, pod, t0, v, t0+1000, v, t0+2000, v)
	}
	if got := dump(t, store); got != want.String() {
		t.Errorf("stored:\n%s\nwant:\n%s", got, want.String())
	}
}

// TestCacheResolvesSeriesInAnyOrder: a cluster writes its series in one
// order (which the cache learns to follow), then reversed, shuffled, with
// new series between known ones and with series left out; every known
// series resolves from the cache whatever the order, and what is stored is
// what Prometheus's handler stores.
func TestCacheResolvesSeriesInAnyOrder(t *testing.T) {
	t.Parallel()
	fastStore, promStore := openStore(t, time.Hour, nil), openStore(t, time.Hour, nil)
	fast, prom := newTestHandler(fastStore, true), newTestHandler(promStore, false)
	t0 := time.Now().Add(-time.Minute).Truncate(time.Second).UnixMilli()
	pods := func(order ...int) []string {
		out := make([]string, len(order))
		for i, n := range order {
			out[i] = fmt.Sprintf("pod-%02d", n)
		}
		return out
	}
	body := func(step int, pods []string) []byte {
		var ts []prompb.TimeSeries
		for _, pod := range pods {
			ts = append(ts, series("restarts", []prompb.Sample{{Timestamp: t0 + int64(step)*1000, Value: float64(step)}}, "pod", pod))
		}
		return rw1Body(t, ts...)
	}
	in := pods(0, 1, 2, 3, 4, 5, 6, 7)
	orders := [][]string{
		in, in, in, // known from the second on (the head's first samples move its epoch on)
		pods(7, 6, 5, 4, 3, 2, 1, 0),
		pods(3, 0, 7, 1, 6, 2, 5, 4),
		pods(0, 1, 20, 2, 3, 21, 4, 5, 6, 7),
		pods(1, 3, 5, 7),
		pods(0, 1, 2, 3, 4, 5, 6, 7, 20, 21),
	}
	for step, order := range orders {
		b := body(step, order)
		if step >= 3 {
			// Every series written before resolves from the cache.
			raw, err := snappy.Decode(nil, b)
			if err != nil {
				t.Fatal(err)
			}
			refs := getResolved()
			cache, _ := fast.refs.forCluster(testCluster)
			known, done := cache.known(fast.limits.For(context.Background(), testCluster).Bounds(), refs)
			_, err = (&rw1Request{buf: raw}).decode(refs, known)
			done()
			if err != nil {
				t.Fatal(err)
			}
			for i, pod := range order {
				if wantHit := !strings.HasPrefix(pod, "pod-2") || step == len(orders)-1; refs.hit[i] != wantHit {
					t.Errorf("write %d (%v): %s resolved by the cache %v, want %v", step, order, pod, refs.hit[i], wantHit)
				}
			}
			putResolved(refs)
		}
		if got, want := post(fast, b, nil), post(prom, b, nil); got.code != http.StatusNoContent || got.code != want.code {
			t.Fatalf("write %d: %d %q, Prometheus's handler %d %q", step, got.code, got.body, want.code, want.body)
		}
	}
	if got, want := dump(t, fastStore), dump(t, promStore); got != want {
		t.Errorf("stored:\n%s\nthrough Prometheus's handler:\n%s", got, want)
	}
}

// TestCacheUnderConcurrentWriters: four writers of one cluster send its
// series at once, each in an order of its own, so that each request's
// lookups follow links the others are rewriting; every sample lands in its
// own series.
func TestCacheUnderConcurrentWriters(t *testing.T) {
	t.Parallel()
	store := openStore(t, time.Hour, nil)
	h := newTestHandler(store, true)
	t0 := time.Now().Add(-30 * time.Minute).Truncate(time.Second).UnixMilli()
	const writers, rounds, pods = 4, 20, 50
	errs := make(chan error, writers)
	for w := range writers {
		go func() {
			for round := range rounds {
				var ts []prompb.TimeSeries
				for i := range pods {
					// Each writer its own order (steps coprime to pods), changing every round.
					pod := (i*[]int{1, 3, 7, 9}[w] + round) % pods
					at := t0 + int64(round*writers+w)*1000
					ts = append(ts, series("restarts", []prompb.Sample{{Timestamp: at, Value: float64(pod)}}, "pod", fmt.Sprintf("pod-%02d", pod)))
				}
				if a := post(h, rw1Body(t, ts...), nil); a.code != http.StatusNoContent {
					errs <- fmt.Errorf("writer %d, round %d: %d %s", w, round, a.code, a.body)
					return
				}
			}
			errs <- nil
		}()
	}
	for range writers {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	lines := strings.Split(strings.TrimSpace(dump(t, store)), "\n")
	if len(lines) != pods {
		t.Fatalf("%d series stored, want %d", len(lines), pods)
	}
	for _, line := range lines {
		var pod int
		if _, err := fmt.Sscanf(line[strings.Index(line, `pod="pod-`)+9:], "%02d", &pod); err != nil {
			t.Fatalf("%s: %v", line, err)
		}
		samples := strings.Fields(line[strings.Index(line, "}")+1:])
		if len(samples) != writers*rounds {
			t.Errorf("pod-%02d has %d samples, want %d", pod, len(samples), writers*rounds)
		}
		want := fmt.Sprintf("=%d", math.Float64bits(float64(pod)))
		for _, s := range samples {
			if !strings.HasSuffix(s, want) {
				t.Errorf("pod-%02d has the sample %s, another series' value", pod, s)
				break
			}
		}
	}
}

// TestCacheEntriesGrowWithTheSeries: a cluster of a few series holds a few
// entries (a hub serves thousands of clusters), and a large one keeps every
// entry where it was put as blocks are added.
func TestCacheEntriesGrowWithTheSeries(t *testing.T) {
	t.Parallel()
	var b entryBlocks
	for i := range 5 {
		b.add(seriesKey{uint64(i + 1)})
	}
	if c := cap(b.blocks[0]); c > 8 {
		t.Errorf("5 entries take room for %d", c)
	}
	const n = 5000
	for i := 5; i < n; i++ {
		b.add(seriesKey{uint64(i + 1)})
	}
	for i := range int32(n) {
		if k := b.at(i).key; k != (seriesKey{uint64(i + 1)}) {
			t.Fatalf("entry %d has key %v", i, k)
		}
	}
	if len(b.blocks) != (n+1<<entryBlockBits-1)>>entryBlockBits {
		t.Errorf("%d entries in %d blocks", n, len(b.blocks))
	}
}
