package hub

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
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
	"go.uber.org/zap"
)

// hubExporter sends one signal to the hub.
type hubExporter struct {
	cfg       *Config
	settings  component.TelemetrySettings
	client    *http.Client
	userAgent string
}

func newHubExporter(cfg *Config, set exporter.Settings) *hubExporter {
	return &hubExporter{
		cfg:       cfg,
		settings:  set.TelemetrySettings,
		userAgent: "fleetpulse-agent/" + set.BuildInfo.Version,
	}
}

func (e *hubExporter) start(ctx context.Context, host component.Host) error {
	client, err := e.cfg.ToClient(ctx, host.GetExtensions(), e.settings)
	if err != nil {
		return fmt.Errorf("build hub http client: %w", err)
	}
	e.client = client
	return nil
}

func (e *hubExporter) shutdown(context.Context) error {
	if e.client != nil {
		e.client.CloseIdleConnections()
	}
	return nil
}

// pushMetrics sends metrics as one remote-write 1.0 request.
func (e *hubExporter) pushMetrics(ctx context.Context, md pmetric.Metrics) error {
	series, dropped := toTimeSeries(md)
	// Points remote write 1.0 cannot carry are dropped; the rest is sent.
	for r := range numDropReasons {
		if n := dropped.points[r]; n > 0 {
			e.settings.Logger.Warn("metric points not sent as remote write",
				zap.String("reason", r.String()), zap.Int("points", n), zap.String("example_metric", dropped.example[r]))
		}
	}
	if len(series) == 0 {
		return nil
	}
	req := &prompb.WriteRequest{Timeseries: series}
	raw, err := req.Marshal()
	if err != nil {
		return consumererror.NewPermanent(fmt.Errorf("encode remote-write request: %w", err))
	}
	headers := http.Header{
		"Content-Encoding":                  {"snappy"},
		"Content-Type":                      {"application/x-protobuf"},
		"X-Prometheus-Remote-Write-Version": {"0.1.0"},
	}
	return e.post(ctx, e.cfg.url(e.cfg.MetricsPath), snappy.Encode(nil, raw), headers)
}

// pushLogs sends logs as one OTLP/HTTP protobuf request.
func (e *hubExporter) pushLogs(ctx context.Context, ld plog.Logs) error {
	body, err := plogotlp.NewExportRequestFromLogs(ld).MarshalProto()
	if err != nil {
		return consumererror.NewPermanent(fmt.Errorf("encode OTLP logs request: %w", err))
	}
	return e.post(ctx, e.cfg.url(e.cfg.LogsPath), body, http.Header{"Content-Type": {"application/x-protobuf"}})
}

// post sends one request and classifies the answer: 2xx is done; 429, 5xx
// and transport errors are retried (after Retry-After when given); any other
// status is permanent, since resending the same bytes cannot succeed.
func (e *hubExporter) post(ctx context.Context, url string, body []byte, headers http.Header) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return consumererror.NewPermanent(fmt.Errorf("build request to %s: %w", url, err))
	}
	for k, v := range headers {
		req.Header[k] = v
	}
	req.Header.Set("User-Agent", e.userAgent)
	resp, err := e.client.Do(req)
	if err != nil {
		return fmt.Errorf("send to %s: %w", url, err)
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
	_, _ = io.Copy(io.Discard, resp.Body)
	if resp.StatusCode/100 == 2 {
		return nil
	}
	err = fmt.Errorf("hub %s answered %s: %s", url, resp.Status, bytes.TrimSpace(msg))
	if resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode/100 == 5 {
		if d := retryAfter(resp.Header.Get("Retry-After")); d > 0 {
			return exporterhelper.NewThrottleRetry(err, d)
		}
		return err
	}
	return consumererror.NewPermanent(err)
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
