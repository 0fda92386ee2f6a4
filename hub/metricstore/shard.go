package metricstore

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"

	"github.com/cespare/xxhash/v2"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/thanos-io/thanos/pkg/info/infopb"
	"github.com/thanos-io/thanos/pkg/store"
	"github.com/thanos-io/thanos/pkg/store/labelpb"
	"github.com/thanos-io/thanos/pkg/store/storepb"
	"google.golang.org/grpc"
)

// ShardLabel names a shard's TSDB: the MultiTSDB tenant label, and the
// external label of the blocks it ships. Queries never see it: a series'
// identity is its own labels, the cluster's name included.
const ShardLabel = "fleetpulse_shard"

// shardsDir is the folder under Config.Dir that holds the shards' TSDBs.
const shardsDir = "shards"

// shardName is the tenant (and folder) name of shard i.
func shardName(i int) string { return fmt.Sprintf("shard-%03d", i) }

// shardOf is the shard a cluster's series are stored in. The hash is
// stable across restarts and releases; a changed shard count moves clusters
// to other shards, which queries do not notice (they read every shard).
func shardOf(cluster string, shards int) int {
	return int(xxhash.Sum64String(cluster) % uint64(shards))
}

// earlierLayout matches the folders an earlier hub kept in Config.Dir, one
// TSDB per cluster named after it (a DNS label), or the fleet tenant.
var earlierLayout = regexp.MustCompile(`^(_fleet|[a-z0-9]([-a-z0-9]*[a-z0-9])?)$`)

// earlierTSDBs lists the per-cluster TSDB folders of the earlier layout in
// dir: folders named like a cluster that hold a WAL.
func earlierTSDBs(dir string) []string {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil
	}
	var out []string
	for _, e := range entries {
		if !e.IsDir() || e.Name() == shardsDir || e.Name() == ShippedRulesDir || e.Name() == bucketCacheName || !earlierLayout.MatchString(e.Name()) {
			continue
		}
		if _, err := os.Stat(filepath.Join(dir, e.Name(), "wal")); err == nil {
			out = append(out, e.Name())
		}
	}
	return out
}

// withoutShard drops the shard label from a label set.
func withoutShard(l labels.Labels) labels.Labels {
	if !l.Has(ShardLabel) {
		return l
	}
	return labels.NewBuilder(l).Del(ShardLabel).Labels()
}

// shardClient is a shard's local store client reading as if the shard had
// no external label: every request asks the store to leave it out (the
// TSDB store drops it from the series it sends), and the label sets the
// proxy matches queries against do not carry it.
type shardClient struct {
	store.Client
	lsets []labels.Labels
}

func newShardClient(c store.Client) *shardClient {
	var lsets []labels.Labels
	for _, l := range c.LabelSets() {
		lsets = append(lsets, withoutShard(l))
	}
	return &shardClient{Client: c, lsets: lsets}
}

var withoutShardLabel = []string{ShardLabel}

// noneMatcher selects nothing: the shard label of no store has its value.
var noneMatcher = storepb.LabelMatcher{Type: storepb.LabelMatcher_EQ, Name: ShardLabel, Value: "\x00none"}

// hiddenMatchers decides a request's matchers on hidden labels (external
// labels a store's series do not show) as they would be decided on the
// series as read, which lack them: a matcher that matches the empty value
// is dropped, and one that does not makes the request select nothing.
func hiddenMatchers(ms []storepb.LabelMatcher, hidden []string) []storepb.LabelMatcher {
	var out []storepb.LabelMatcher
	for i, m := range ms {
		if !slices.Contains(hidden, m.Name) {
			if out != nil {
				out = append(out, m)
			}
			continue
		}
		if out == nil {
			out = append(make([]storepb.LabelMatcher, 0, len(ms)), ms[:i]...)
		}
		pm, err := storepb.MatcherToPromMatcher(m)
		if err != nil || !pm.Matches("") {
			return []storepb.LabelMatcher{noneMatcher}
		}
	}
	if out == nil {
		return ms
	}
	return out
}

// hiddenAnd is the replica labels a request asks a store to leave out
// (those a deduplicating reader names) and the hidden ones.
func hiddenAnd(asked, hidden []string) []string {
	if len(asked) == 0 {
		return hidden
	}
	out := slices.Clone(asked)
	for _, h := range hidden {
		if !slices.Contains(out, h) {
			out = append(out, h)
		}
	}
	return out
}

func (c *shardClient) Series(ctx context.Context, in *storepb.SeriesRequest, opts ...grpc.CallOption) (storepb.Store_SeriesClient, error) {
	req := *in // the proxy shares its request among its stores
	req.Matchers = hiddenMatchers(in.Matchers, withoutShardLabel)
	req.WithoutReplicaLabels = hiddenAnd(in.WithoutReplicaLabels, withoutShardLabel)
	return c.Client.Series(ctx, &req, opts...)
}

func (c *shardClient) LabelNames(ctx context.Context, in *storepb.LabelNamesRequest, opts ...grpc.CallOption) (*storepb.LabelNamesResponse, error) {
	req := *in
	req.Matchers = hiddenMatchers(in.Matchers, withoutShardLabel)
	req.WithoutReplicaLabels = hiddenAnd(in.WithoutReplicaLabels, withoutShardLabel)
	return c.Client.LabelNames(ctx, &req, opts...)
}

func (c *shardClient) LabelValues(ctx context.Context, in *storepb.LabelValuesRequest, opts ...grpc.CallOption) (*storepb.LabelValuesResponse, error) {
	req := *in
	req.Matchers = hiddenMatchers(in.Matchers, withoutShardLabel)
	req.WithoutReplicaLabels = hiddenAnd(in.WithoutReplicaLabels, withoutShardLabel)
	return c.Client.LabelValues(ctx, &req, opts...)
}

func (c *shardClient) LabelSets() []labels.Labels { return c.lsets }

func (c *shardClient) TSDBInfos() []infopb.TSDBInfo {
	infos := c.Client.TSDBInfos()
	out := make([]infopb.TSDBInfo, len(infos))
	for i, info := range infos {
		info.Labels = labelpb.ZLabelSet{Labels: labelpb.ZLabelsFromPromLabels(withoutShard(info.Labels.PromLabels()))}
		out[i] = info
	}
	return out
}

// Folders the hub keeps in Config.Dir beside the shards: the shipped rule
// packs, written at every start, and the bucket store's cache.
const (
	ShippedRulesDir = "shipped-rules"
	bucketCacheName = "bucket-cache"
)
