package ingest

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"

	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"

	"github.com/fleetpulse/fleetpulse/hub/metricstore"
)

// A remote-write 1.0 request with a sample the TSDB refuses (out of order,
// too old, a duplicate, out of bounds) keeps its other samples and is
// answered 400 naming every refused one, as Prometheus's handler answers
// 2.0: Prometheus answers 1.0 all or nothing, and a 400 is not retried, so
// one old sample in an agent's batch lost the whole batch. rw1.go's
// appendSeries does so itself; on Prometheus's path (histograms,
// exemplars) keepGoodSamples and partialAnswer do it around that handler.
// A sample more than 10 minutes ahead is still refused with its request on
// both, as Prometheus refuses it before the appender sees it.

// isBadSample reports an append error that refuses the sample, not the
// request.
func isBadSample(err error) bool {
	return errors.Is(err, storage.ErrOutOfOrderSample) || errors.Is(err, storage.ErrOutOfBounds) ||
		errors.Is(err, storage.ErrDuplicateSampleForTimestamp) || errors.Is(err, storage.ErrTooOldSample)
}

// badSample is the refusal of one sample, naming its series as stored.
func badSample(err error, stored labels.Labels) error {
	return fmt.Errorf("%w for series %v", err, stored.String())
}

// keepGoodSamples appends for Prometheus's remote write 1.0 path, taking
// refused samples out of the way: each is recorded and the request goes
// on.
type keepGoodSamples struct {
	storage.Appender
	cluster string
	logger  *slog.Logger
	bad     []error
}

func (k *keepGoodSamples) Append(ref storage.SeriesRef, l labels.Labels, t int64, v float64) (storage.SeriesRef, error) {
	ref, err := k.Appender.Append(ref, l, t, v)
	return ref, k.keep(err, l, t)
}

func (k *keepGoodSamples) AppendHistogram(ref storage.SeriesRef, l labels.Labels, t int64, h *histogram.Histogram, fh *histogram.FloatHistogram) (storage.SeriesRef, error) {
	ref, err := k.Appender.AppendHistogram(ref, l, t, h, fh)
	return ref, k.keep(err, l, t)
}

func (k *keepGoodSamples) keep(err error, l labels.Labels, t int64) error {
	if err == nil || !isBadSample(err) {
		return err
	}
	stored := labels.NewBuilder(l).Set(metricstore.ClusterLabel, k.cluster).Del(metricstore.ShardLabel).Labels()
	k.logger.Debug("Out of order sample from remote write", "err", err.Error(), "series", stored.String(), "timestamp", t)
	k.bad = append(k.bad, badSample(err, stored))
	return nil
}

// partialAnswer turns Prometheus's success answer into 400 naming the
// samples keepGoodSamples took out (the rest were committed).
type partialAnswer struct {
	http.ResponseWriter
	keep     *keepGoodSamples
	answered bool
}

func (p *partialAnswer) WriteHeader(code int) {
	if code/100 == 2 && len(p.keep.bad) > 0 {
		p.answered = true
		http.Error(p.ResponseWriter, errors.Join(p.keep.bad...).Error(), http.StatusBadRequest)
		return
	}
	p.ResponseWriter.WriteHeader(code)
}

func (p *partialAnswer) Write(b []byte) (int, error) {
	if p.answered {
		return len(b), nil
	}
	return p.ResponseWriter.Write(b)
}
