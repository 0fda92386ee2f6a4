package hub

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/golang/snappy"
	"github.com/prometheus/prometheus/prompb"
	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/consumer/consumererror"
	"go.opentelemetry.io/collector/exporter"
	"go.opentelemetry.io/collector/exporter/exporterhelper"
	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/collector/pdata/plog/plogotlp"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/otel/metric"
	"go.uber.org/zap"

	"github.com/fleetpulse/fleetpulse/exporters/hub/internal/metadata"
	"github.com/fleetpulse/fleetpulse/internal/ownerroute"
)

// hubExporter sends one signal to the hub.
type hubExporter struct {
	cfg       *Config
	settings  component.TelemetrySettings
	client    *http.Client
	userAgent string
	// rw1Only is set once a receiver has shown that it does not take remote
	// write 2.0; metrics go as 1.0 from then on.
	rw1Only atomic.Bool
	// unwritten counts samples a 2.0 receiver acknowledged but reported as
	// not written.
	unwritten metric.Int64Counter
}

func newHubExporter(cfg *Config, set exporter.Settings) (*hubExporter, error) {
	tb, err := metadata.NewTelemetryBuilder(set.TelemetrySettings)
	if err != nil {
		return nil, fmt.Errorf("create the exporter's telemetry: %w", err)
	}
	return &hubExporter{
		cfg:       cfg,
		settings:  set.TelemetrySettings,
		userAgent: "fleetpulse-agent/" + set.BuildInfo.Version,
		unwritten: tb.HubExporterUnwrittenSamples,
	}, nil
}

// The request headers of each remote-write version, as its specification
// gives them.
var (
	rw1Headers = http.Header{
		"Content-Encoding":                  {"snappy"},
		"Content-Type":                      {"application/x-protobuf"},
		"X-Prometheus-Remote-Write-Version": {"0.1.0"},
	}
	rw2Headers = http.Header{
		"Content-Encoding":                  {"snappy"},
		"Content-Type":                      {"application/x-protobuf;proto=io.prometheus.write.v2.Request"},
		"X-Prometheus-Remote-Write-Version": {"2.0.0"},
	}
)

// The response headers in which a remote-write 2.0 receiver counts what it
// wrote.
const (
	headerSamplesWritten    = "X-Prometheus-Remote-Write-Samples-Written"
	headerHistogramsWritten = "X-Prometheus-Remote-Write-Histograms-Written"
	headerExemplarsWritten  = "X-Prometheus-Remote-Write-Exemplars-Written"
)

func (e *hubExporter) start(ctx context.Context, host component.Host) error {
	client, err := e.cfg.ToClient(ctx, host.GetExtensions(), e.settings)
	if err != nil {
		return fmt.Errorf("build hub http client: %w", err)
	}
	// Writes go to the cluster's owner among hub replicas once one has
	// redirected them there.
	e.client = ownerroute.Client(client)
	return nil
}

func (e *hubExporter) shutdown(context.Context) error {
	if e.client != nil {
		e.client.CloseIdleConnections()
	}
	return nil
}

// pushMetrics sends metrics as one remote-write request of the configured
// version.
func (e *hubExporter) pushMetrics(ctx context.Context, md pmetric.Metrics) error {
	if e.cfg.Protocol == ProtocolRW2 && !e.rw1Only.Load() {
		return e.pushMetricsV2(ctx, md)
	}
	return e.pushMetricsV1(ctx, md)
}

// pushMetricsV1 sends metrics as one remote-write 1.0 request.
func (e *hubExporter) pushMetricsV1(ctx context.Context, md pmetric.Metrics) error {
	series, dropped := toTimeSeries(md)
	e.warnDropped(dropped)
	return e.sendV1(ctx, series)
}

// sendV1 sends series as one remote-write 1.0 request.
func (e *hubExporter) sendV1(ctx context.Context, series []prompb.TimeSeries) error {
	if len(series) == 0 {
		return nil
	}
	req := &prompb.WriteRequest{Timeseries: series}
	raw, err := req.Marshal()
	if err != nil {
		return consumererror.NewPermanent(fmt.Errorf("encode remote-write request: %w", err))
	}
	_, err = e.post(ctx, e.cfg.url(e.cfg.MetricsPath), snappy.Encode(nil, raw), rw1Headers)
	return err
}

// pushMetricsV2 sends metrics as one remote-write 2.0 request and checks the
// receiver's count of samples written. A receiver that answers 415, or 2xx
// without any written-count header (a 1.0 receiver, which decodes a 2.0
// message as an empty 1.0 one and so wrote nothing), gets the metrics again
// as 1.0, and 1.0 from then on, as the 2.0 specification allows.
func (e *hubExporter) pushMetricsV2(ctx context.Context, md pmetric.Metrics) error {
	req, samples, dropped := toWriteV2(md)
	e.warnDropped(dropped)
	if len(req.Timeseries) == 0 {
		return nil
	}
	// As Prometheus' own sender: label references packed without the
	// generated code's scratch buffer per series.
	raw, err := req.OptimizedMarshal(nil)
	if err != nil {
		return consumererror.NewPermanent(fmt.Errorf("encode remote-write 2.0 request: %w", err))
	}
	url := e.cfg.url(e.cfg.MetricsPath)
	ans, err := e.post(ctx, url, snappy.Encode(nil, raw), rw2Headers)
	if ans.status == http.StatusUnsupportedMediaType {
		return e.fallBackToRW1(ctx, md, url, err.Error())
	}
	written, confirmed, perr := samplesWritten(ans.header)
	if perr != nil {
		e.settings.Logger.Warn("remote-write 2.0 receiver sent a malformed written-count header",
			zap.String("url", url), zap.Error(perr))
	}
	if err != nil {
		if confirmed && perr == nil {
			return fmt.Errorf("%w (receiver wrote %d of %d samples)", err, written, samples)
		}
		return err
	}
	if !confirmed {
		return e.fallBackToRW1(ctx, md, url, ans.statusText+" without "+headerSamplesWritten)
	}
	if perr == nil && written < samples {
		e.settings.Logger.Warn("remote-write 2.0 receiver acknowledged the request but wrote fewer samples than sent",
			zap.String("url", url), zap.Int("sent", samples), zap.Int("written", written))
		e.unwritten.Add(ctx, int64(samples-written))
	}
	return nil
}

// fallBackToRW1 switches the exporter to remote write 1.0 and sends md so
// (what could not be converted was logged already).
func (e *hubExporter) fallBackToRW1(ctx context.Context, md pmetric.Metrics, url, answer string) error {
	if e.rw1Only.CompareAndSwap(false, true) {
		e.settings.Logger.Warn("receiver does not take remote write 2.0; sending remote write 1.0 from now on (set protocol: rw1 to start so)",
			zap.String("url", url), zap.String("answer", answer))
	}
	series, _ := toTimeSeries(md)
	return e.sendV1(ctx, series)
}

// samplesWritten reads a 2.0 receiver's count of samples (float and
// histogram) written. confirmed is false when none of the written-count
// headers is there; a missing one of them counts 0, as the specification says.
func samplesWritten(h http.Header) (written int, confirmed bool, err error) {
	var errs []error
	for _, name := range []string{headerSamplesWritten, headerHistogramsWritten, headerExemplarsWritten} {
		v := h.Get(name)
		if v == "" {
			continue
		}
		confirmed = true
		n, perr := strconv.Atoi(v)
		if perr != nil || n < 0 {
			errs = append(errs, fmt.Errorf("%s: %q is not a count", name, v))
			continue
		}
		if name != headerExemplarsWritten {
			written += n
		}
	}
	return written, confirmed, errors.Join(errs...)
}

// warnDropped logs the points remote write cannot carry; the rest is sent.
func (e *hubExporter) warnDropped(dropped drops) {
	for r := range numDropReasons {
		if n := dropped.points[r]; n > 0 {
			e.settings.Logger.Warn("metric points not sent as remote write",
				zap.String("reason", r.String()), zap.Int("points", n), zap.String("example_metric", dropped.example[r]))
		}
	}
}

// pushLogs sends logs as one OTLP/HTTP protobuf request.
func (e *hubExporter) pushLogs(ctx context.Context, ld plog.Logs) error {
	body, err := plogotlp.NewExportRequestFromLogs(ld).MarshalProto()
	if err != nil {
		return consumererror.NewPermanent(fmt.Errorf("encode OTLP logs request: %w", err))
	}
	_, err = e.post(ctx, e.cfg.url(e.cfg.LogsPath), body, http.Header{"Content-Type": {"application/x-protobuf"}})
	return err
}

// answer is what post learned of the receiver's response: zero when there
// was none.
type answer struct {
	status     int
	statusText string
	header     http.Header
}

// post sends one request and classifies the answer: 2xx is done; 429, 5xx
// and transport errors are retried (after Retry-After when given); any other
// status is permanent, since resending the same bytes cannot succeed.
func (e *hubExporter) post(ctx context.Context, url string, body []byte, headers http.Header) (answer, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return answer{}, consumererror.NewPermanent(fmt.Errorf("build request to %s: %w", url, err))
	}
	for k, v := range headers {
		req.Header[k] = slices.Clone(v)
	}
	req.Header.Set("User-Agent", e.userAgent)
	resp, err := e.client.Do(req)
	if err != nil {
		return answer{}, fmt.Errorf("send to %s: %w", url, err)
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
	_, _ = io.Copy(io.Discard, resp.Body)
	ans := answer{status: resp.StatusCode, statusText: resp.Status, header: resp.Header}
	if resp.StatusCode/100 == 2 {
		return ans, nil
	}
	err = fmt.Errorf("hub %s answered %s: %s", url, resp.Status, bytes.TrimSpace(msg))
	if resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode/100 == 5 {
		if d := retryAfter(resp.Header.Get("Retry-After")); d > 0 {
			return ans, exporterhelper.NewThrottleRetry(err, d)
		}
		return ans, err
	}
	return ans, consumererror.NewPermanent(err)
}

// retryAfter parses a Retry-After header in seconds or as an HTTP date.
func retryAfter(v string) time.Duration {
	if v == "" {
		return 0
	}
	if s, err := strconv.Atoi(v); err == nil && s > 0 {
		return time.Duration(s) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		return time.Until(t)
	}
	return 0
}
