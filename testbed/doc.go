// Package testbed starts real Kubernetes clusters on loopback for tests and for
// the local development fleet.
//
// A cluster is a set of real processes: etcd (embedded etcd v3.6), kube-apiserver,
// kube-controller-manager and kube-scheduler built from k8s.io/kubernetes, and
// kwok simulating nodes and pods. No container runtime is needed. The binaries
// are built from the Go module proxy once, by the tools module in ./tools, into
// a cache folder that later runs reuse (see EnsureBinaries).
//
// Every process is started with a parent-death signal and in its own process
// group, and Cluster.Stop (or the test's cleanup) ends all of them and removes
// the cluster's working directory.
package testbed
