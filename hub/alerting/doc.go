// Package alerting evaluates the hub's Prometheus rule files (recording and
// alerting) with Prometheus's rules manager over the fleet's series, and
// sends firing and resolved alerts to Alertmanager through Prometheus's
// notifier. Recording rules write into a TSDB of their own.
package alerting
