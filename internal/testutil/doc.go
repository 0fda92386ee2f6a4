// Package testutil holds helpers shared by the project's tests: polling with a
// deadline, a test logger, and running a long-lived component until the test
// ends.
//
// Its subpackages start heavier things: controlplane a real hub control plane
// (kube-apiserver and etcd from the test bed, with the CRDs installed) and a
// controller-runtime manager on it, hubtest a real hub. Certificates come from
// testbed.CA. Assertions are testify's (require, assert).
package testutil
