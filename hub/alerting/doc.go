// Package alerting evaluates the hub's Prometheus rule files (recording and
// alerting) with Prometheus's rules manager over the fleet's series, and
// sends firing and resolved alerts to Alertmanager through Prometheus's
// notifier. With several hub replicas it splits the groups between them by
// cluster ownership (per-cluster groups over each replica's own clusters,
// fleet-wide groups on the leader), carries an alert's state on when its
// cluster changes owner, and serves and reads the replicas' alerts over
// Thanos's Rules API.
package alerting
