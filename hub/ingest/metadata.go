package ingest

import (
	"github.com/gogo/protobuf/proto"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
	"github.com/thanos-io/thanos/pkg/store/storepb/prompb"

	"github.com/fleetpulse/fleetpulse/hub/metadata"
)

// tagMetadata is the protobuf tag of WriteRequest.metadata (remote write
// 1.0), length-delimited.
const tagMetadata = 3<<3 | 2

// updateMetadataRW1 gives app the metric families' metadata of a decompressed
// remote write 1.0 request (WriteRequest.metadata, which Prometheus sends
// every minute apart from samples, and which Prometheus's 1.0 handler
// drops), each as the metadata of a series of just the family's name: the
// store keeps it per cluster when app commits (metricstore.WithMetadata).
// It walks the request's top-level fields only, and stops at bytes it
// cannot walk, which decoding the series refuses.
func updateMetadataRW1(app storage.Appender, buf []byte) {
	for off := 0; off < len(buf); {
		tag, n := proto.DecodeVarint(buf[off:])
		if n == 0 || tag&7 != 2 {
			return
		}
		msg, next, ok := lengthDelimited(buf, off+n)
		if !ok {
			return
		}
		var m prompb.MetricMetadata
		if tag == tagMetadata && m.Unmarshal(msg) == nil && m.MetricFamilyName != "" {
			_, _ = app.UpdateMetadata(0, labels.FromStrings(model.MetricNameLabel, m.MetricFamilyName), metadata.FromProto(int32(m.Type), m.Help, m.Unit))
		}
		off = next
	}
}
