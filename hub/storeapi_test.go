package hub

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/thanos-io/thanos/pkg/store/storepb"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/fleetpulse/fleetpulse/internal/testutil"
)

// clusterRule records one series for a cluster, into the hub's store.
func clusterRule(cluster string) string {
	return `groups:
  - name: probe
    rules:
      - record: cluster:probe:value
        expr: label_replace(vector(3), "cluster", "` + cluster + `", "", "")
`
}

// TestStoreAPIServesWhatQueriesRead runs two hubs that each hold one
// cluster and reads both through Thanos's StoreAPI, as `thanos query` does:
// each answers the series its own query API answers, with the cluster
// label and without the hub's shard label, and together they are the
// fleet.
func TestStoreAPIServesWhatQueriesRead(t *testing.T) {
	t.Parallel()
	var fleet []string
	for _, cluster := range []string{"east", "west"} {
		dir := t.TempDir()
		ruleFile := filepath.Join(dir, "probe.yaml")
		if err := os.WriteFile(ruleFile, []byte(clusterRule(cluster)), 0o644); err != nil {
			t.Fatal(err)
		}
		cfg := DefaultConfig()
		cfg.HTTPListenAddress, cfg.AgentListenAddress, cfg.GRPCListenAddress = "127.0.0.1:0", "", "127.0.0.1:0"
		cfg.Store.Dir = filepath.Join(dir, "tsdb")
		cfg.NoShippedRules = true
		cfg.Alerting.RuleFiles = []string{ruleFile}
		cfg.Alerting.EvaluationInterval = 200 * time.Millisecond
		h, _ := runHub(t, cfg)
		api := hubAPI(t, h)
		waitFor(t, api, `cluster:probe:value == 3`)

		own, _, err := api.Series(context.Background(), []string{`cluster:probe:value`}, time.Now().Add(-time.Hour), time.Now().Add(time.Minute))
		if err != nil {
			t.Fatal(err)
		}
		var want []string
		for _, s := range own {
			m := map[string]string{}
			for k, v := range s {
				m[string(k)] = string(v)
			}
			want = append(want, labels.FromMap(m).String())
		}
		slices.Sort(want)
		got := storeAPISeries(t, h.GRPCAddr().String(), "cluster:probe:value")
		if !slices.Equal(got, want) {
			t.Errorf("hub %s: StoreAPI series %v, want what its query API answers: %v", cluster, got, want)
		}
		for _, s := range got {
			if strings.Contains(s, "fleetpulse_shard") || !strings.Contains(s, `cluster="`+cluster+`"`) {
				t.Errorf("hub %s: StoreAPI series %s, want its cluster label and no shard label", cluster, s)
			}
		}
		fleet = append(fleet, got...)
	}
	if len(fleet) != 2 {
		t.Errorf("the two hubs' StoreAPIs serve %v, want one series per cluster", fleet)
	}
}

// storeAPISeries calls Series on a StoreAPI for the last hour of a metric
// and returns the series' label sets, sorted.
func storeAPISeries(t *testing.T, addr, metric string) []string {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	var out []string
	testutil.Eventually(t, 10*time.Second, func() error {
		out = out[:0]
		stream, err := storepb.NewStoreClient(conn).Series(context.Background(), &storepb.SeriesRequest{
			MinTime: time.Now().Add(-time.Hour).UnixMilli(), MaxTime: time.Now().Add(time.Minute).UnixMilli(),
			Matchers: []storepb.LabelMatcher{{Type: storepb.LabelMatcher_EQ, Name: model.MetricNameLabel, Value: metric}},
		})
		if err != nil {
			return err
		}
		for {
			r, err := stream.Recv()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				return err
			}
			if s := r.GetSeries(); s != nil {
				out = append(out, s.PromLabels().String())
			}
		}
		if len(out) == 0 {
			return errors.New("no series yet")
		}
		return nil
	})
	slices.Sort(out)
	return out
}
