package ingest

import (
	"slices"
	"strings"
	"time"

	"github.com/prometheus/prometheus/prompb"
)

// withHubState adds to a cluster's inventory series what the hub holds for
// it after an hour besides: the agent's own metrics (pushed over OTLP, as
// the exporter translates them), the hub's event counts, the outputs of
// the shipped recording rules (rules/fleet-aggregates.yaml, computed here
// from the inventory values as the rules would) and, for one cluster in
// ten, a firing alert. Rules and alerts would carry cluster="<name>"; the
// hub gives every series of a tenant that label, so none is written.
func withHubState(inv []series, cluster string, idx int, interval time.Duration) []series {
	out := slices.Clone(inv)
	add := func(name string, perStep int, value func(int) float64, pairs ...string) {
		lbls := []prompb.Label{{Name: "__name__", Value: name}}
		for i := 0; i+1 < len(pairs); i += 2 {
			lbls = append(lbls, prompb.Label{Name: pairs[i], Value: pairs[i+1]})
		}
		slices.SortFunc(lbls, func(a, b prompb.Label) int { return strings.Compare(a.Name, b.Name) })
		out = append(out, series{labels: lbls, value: value, perStep: perStep})
	}
	// sum adds up the inventory series of a metric whose labels match.
	sum := func(metric string, match func([]prompb.Label) bool) func(int) float64 {
		var picked []series
		for _, s := range inv {
			if labelValue(s.labels, "__name__") == metric && (match == nil || match(s.labels)) {
				picked = append(picked, s)
			}
		}
		return func(step int) float64 {
			v := 0.0
			for _, s := range picked {
				v += s.value(step)
			}
			return v
		}
	}
	is := func(name string, values ...string) func([]prompb.Label) bool {
		return func(l []prompb.Label) bool { return slices.Contains(values, labelValue(l, name)) }
	}
	ratio := func(a, b func(int) float64) func(int) float64 {
		return func(step int) float64 { return a(step) / b(step) }
	}
	counter := func(perStep float64) func(int) float64 {
		return func(step int) float64 { return perStep * float64(step+1) }
	}
	constant := func(v float64) func(int) float64 { return func(int) float64 { return v } }

	// The agent's own metrics.
	id := []string{"job", "fleetpulse-agent", "instance", uid(idx, 9, 0), "service_name", "fleetpulse-agent",
		"service_version", "v0.1.0", "k8s_cluster_name", cluster}
	points := float64(len(inv))
	exp := append(slices.Clone(id), "exporter", "fleetpulse_hub")
	add("otelcol_exporter_sent_metric_points_total", 1, counter(points), exp...)
	add("otelcol_exporter_send_failed_metric_points_total", 1, constant(0), exp...)
	add("otelcol_exporter_sent_log_records_total", 1, counter(4), exp...)
	add("otelcol_exporter_send_failed_log_records_total", 1, constant(0), exp...)
	for _, dt := range []string{"metrics", "logs"} {
		add("otelcol_exporter_queue_size", 1, constant(0), append(slices.Clone(exp), "data_type", dt)...)
		add("otelcol_exporter_queue_capacity", 1, constant(5000), append(slices.Clone(exp), "data_type", dt)...)
	}
	add("otelcol_scraper_scraped_metric_points_total", 1, counter(points), append(slices.Clone(id), "receiver", "k8s_inventory", "scraper", "k8s_inventory")...)
	add("otelcol_receiver_accepted_log_records_total", 1, counter(4), append(slices.Clone(id), "receiver", "k8s_events")...)
	add("fleetpulse_series_limit_dropped_points_total", 1, constant(0), id...)
	add("fleetpulse_k8s_events_dropped_total", 1, constant(0), id...)
	add("otelcol_process_memory_rss_bytes", 1, constant(70<<20), id...)
	add("otelcol_process_cpu_seconds_total", 1, counter(0.3), id...)

	// The hub's count of the cluster's events.
	warnings := 0.0
	for _, e := range []struct {
		reason, typ, kind string
		perStep           float64
	}{
		{"Scheduled", "Normal", "Pod", 3}, {"Pulled", "Normal", "Pod", 3}, {"Started", "Normal", "Pod", 3},
		{"ScalingReplicaSet", "Normal", "Deployment", 1}, {"BackOff", "Warning", "Pod", float64(idx % 3)},
		{"Unhealthy", "Warning", "Pod", 1}, {"FailedScheduling", "Warning", "Pod", float64(idx % 2)},
	} {
		add("fleetpulse_events_total", 1, counter(e.perStep), "reason", e.reason, "type", e.typ, "kind", e.kind)
		if e.typ == "Warning" {
			warnings += e.perStep
		}
	}

	// Recording rules, evaluated every 15s.
	nodes := sum("k8s_cluster_node_count", nil)
	add("cluster:k8s_nodes:count", 2, nodes)
	add("cluster:k8s_nodes_ready:ratio", 2, ratio(sum("k8s_cluster_node_count", is("k8s_node_condition_ready", "true")), nodes))
	add("cluster:k8s_cpu_requests:ratio", 2, ratio(sum("k8s_cluster_cpu_request", nil), sum("k8s_cluster_allocatable_cpu", nil)))
	add("cluster:k8s_memory_requests:ratio", 2, ratio(sum("k8s_cluster_memory_request_bytes", nil), sum("k8s_cluster_allocatable_memory_bytes", nil)))
	add("cluster:k8s_pod_slots_used:ratio", 2, ratio(sum("k8s_cluster_pod_count", is("k8s_pod_status_phase", "running", "pending")), sum("k8s_cluster_allocatable_pods", nil)))
	for _, phase := range []string{"pending", "running", "succeeded", "failed", "unknown"} {
		add("cluster:k8s_pods:count", 2, sum("k8s_cluster_pod_count", is("k8s_pod_status_phase", phase)), "k8s_pod_status_phase", phase)
	}
	add("cluster:k8s_containers_crashlooping:count", 2, sum("k8s_cluster_container_waiting", is("k8s_container_status_reason", "CrashLoopBackOff")))
	add("cluster:fleetpulse_warning_events:rate5m", 2, constant(warnings/interval.Seconds()))

	if idx%10 == 0 {
		alert := []string{"alertname", "FleetpulseCrashLooping", "severity", "warning", "k8s_namespace_name", "team-00"}
		add("ALERTS", 2, constant(1), append(slices.Clone(alert), "alertstate", "firing")...)
		// ALERTS_FOR_STATE holds when the alert went active (Unix seconds).
		add("ALERTS_FOR_STATE", 2, constant(1.7e9), alert...)
	}
	return out
}

func labelValue(l []prompb.Label, name string) string {
	for _, x := range l {
		if x.Name == name {
			return x.Value
		}
	}
	return ""
}
