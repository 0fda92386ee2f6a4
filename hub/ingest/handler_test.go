package ingest

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/prometheus/promql"

	"github.com/fleetpulse/fleetpulse/hub/gateway"
	"github.com/fleetpulse/fleetpulse/hub/gateway/gatewaytest"
	"github.com/fleetpulse/fleetpulse/hub/metricstore"
)

// TestWritesAreAuthenticatedAndBounded writes to a real store over real
// mutual TLS: each refusal has its status and says why, refused writes store
// nothing, and a cluster's "cluster" label claim cannot override its identity.
func TestWritesAreAuthenticatedAndBounded(t *testing.T) {
	t.Parallel()
	store := openStore(t, metricstore.DefaultConfig().OutOfOrderWindow, nil)

	gw := gateway.New(gateway.Options{})
	gw.Handle("/api/v1/write", NewHandler(store, Options{MaxRequestBytes: 64 << 10}))
	srv := gatewaytest.Start(t, gw)
	client := srv.Client
	now := time.Now()
	good := writeRequest(t, now, "up_probe", 1, "cluster", "cluster-b")

	for _, tc := range []struct {
		name, cn string
		body     []byte
		status   int
		msg      string
	}{
		{"no client certificate", "", good, http.StatusUnauthorized, "client certificate"},
		{"not a cluster name", "Not_A_Cluster", good, http.StatusForbidden, "not a cluster name"},
		{"too large", "cluster-a", bytes.Repeat([]byte{1}, 65<<10), http.StatusRequestEntityTooLarge, "over the request_bytes limit of 65536"},
		{"not snappy", "cluster-a", []byte("definitely not a remote-write request"), http.StatusBadRequest, ""},
		{"accepted", "cluster-a", good, http.StatusNoContent, ""},
	} {
		resp, err := client(tc.cn).Post(srv.URL+"/api/v1/write", "application/x-protobuf", bytes.NewReader(tc.body))
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		msg, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tc.status || !strings.Contains(string(msg), tc.msg) {
			t.Errorf("%s: %d %q, want %d containing %q", tc.name, resp.StatusCode, msg, tc.status, tc.msg)
		}
	}

	// Only the accepted write is stored, and under the writer's identity.
	engine := promql.NewEngine(promql.EngineOpts{MaxSamples: 1000, Timeout: time.Minute, LookbackDelta: 5 * time.Minute})
	q, err := engine.NewInstantQuery(context.Background(), store.Queryable(), nil, `up_probe`, now)
	if err != nil {
		t.Fatal(err)
	}
	res := q.Exec(context.Background())
	if res.Err != nil {
		t.Fatal(res.Err)
	}
	if got := res.Value.String(); got != `{__name__="up_probe", cluster="cluster-a"} => 1 @[`+fmt.Sprint(now.UnixMilli())+`]` {
		t.Errorf("stored = %s, want exactly one series, labelled cluster=\"cluster-a\"", got)
	}
}
