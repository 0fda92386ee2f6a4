// Package e2e holds Fleetpulse's end-to-end tests. They run real processes
// from the test bed (etcd, kube-apiserver, kube-controller-manager,
// kube-scheduler, kwok) and the Fleetpulse binaries, on loopback.
package e2e
