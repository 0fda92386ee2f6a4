package metricstore

import (
	"context"
	"reflect"
	"testing"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	promMetadata "github.com/prometheus/prometheus/model/metadata"

	"github.com/fleetpulse/fleetpulse/hub/metadata"
)

// TestMetadataKeptPerClusterOnCommit gives the store's appenders metadata
// as Prometheus's write handler does (after a series' samples) and as
// remote write 1.0 gives it (a family with no series at all, which the
// TSDB head would refuse): it is kept for the appender's cluster once it
// commits, and dropped with a rollback.
func TestMetadataKeptPerClusterOnCommit(t *testing.T) {
	t.Parallel()
	md, err := metadata.New(metadata.DefaultLimits(), nil)
	if err != nil {
		t.Fatal(err)
	}
	cfg := DefaultConfig()
	cfg.Dir, cfg.Shards = t.TempDir(), 2
	s, err := Open(cfg, nil, nil, WithMetadata(md))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ts := time.Now().UnixMilli()
	requests := promMetadata.Metadata{Type: model.MetricTypeCounter, Help: "Requests served.", Unit: "requests"}
	up := promMetadata.Metadata{Type: model.MetricTypeGauge, Help: "Target up."}

	app, err := s.Appender(context.Background(), "east")
	if err != nil {
		t.Fatal(err)
	}
	series := labels.FromStrings("__name__", "http_requests_total", "code", "200")
	ref, err := app.Append(0, series, ts, 1)
	if err != nil {
		t.Fatal(err)
	}
	for _, call := range []struct {
		l labels.Labels
		m promMetadata.Metadata
	}{
		{series, requests},
		{labels.FromStrings("__name__", "http_requests_total", "code", "500"), requests}, // the same family again
		{labels.FromStrings("__name__", "up"), up},                                       // no such series
		{labels.FromStrings("__name__", "no_metadata"), promMetadata.Metadata{}},
	} {
		if _, err := app.UpdateMetadata(ref, call.l, call.m); err != nil {
			t.Fatalf("UpdateMetadata(%s): %v", call.l, err)
		}
	}
	if got := md.Cluster("east"); len(got) != 0 {
		t.Fatalf("metadata kept before commit: %v", got)
	}
	if err := app.Commit(); err != nil {
		t.Fatal(err)
	}
	want := []metadata.Family{{Name: "http_requests_total", Metadata: requests}, {Name: "up", Metadata: up}}
	if got := md.Cluster("east"); !reflect.DeepEqual(got, want) {
		t.Errorf("east's metadata = %v, want %v", got, want)
	}

	// A rolled-back appender keeps nothing.
	app, err = s.Appender(context.Background(), "west")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := app.UpdateMetadata(0, labels.FromStrings("__name__", "up"), up); err != nil {
		t.Fatal(err)
	}
	if err := app.Rollback(); err != nil {
		t.Fatal(err)
	}
	if got := md.Cluster("west"); len(got) != 0 {
		t.Errorf("metadata of a rolled-back appender kept: %v", got)
	}

	// The hub's own writers' metadata goes to the cluster their series
	// name.
	rapp := s.RoutingAppendable().Appender(context.Background())
	if _, err := rapp.UpdateMetadata(0, labels.FromStrings("__name__", "cluster:up:sum", "cluster", "west"), up); err != nil {
		t.Fatal(err)
	}
	if err := rapp.Commit(); err != nil {
		t.Fatal(err)
	}
	if got := md.Cluster("west"); len(got) != 1 || got[0].Name != "cluster:up:sum" {
		t.Errorf("west's metadata from the routing appender = %v", got)
	}
}

// TestMetadataDroppedWithoutStore checks that a store without a metadata
// store takes metadata without error and without reaching the head.
func TestMetadataDroppedWithoutStore(t *testing.T) {
	t.Parallel()
	cfg := DefaultConfig()
	cfg.Dir, cfg.Shards = t.TempDir(), 1
	s, err := Open(cfg, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	app, err := s.Appender(context.Background(), "east")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := app.UpdateMetadata(0, labels.FromStrings("__name__", "unknown_series"), promMetadata.Metadata{Type: model.MetricTypeGauge}); err != nil {
		t.Fatalf("UpdateMetadata of a series the head does not hold: %v", err)
	}
	if err := app.Commit(); err != nil {
		t.Fatal(err)
	}
}
