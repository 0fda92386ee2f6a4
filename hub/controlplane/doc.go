// Package controlplane is the hub's control plane: the controller-runtime
// manager that runs the registration, placement, work, workset and actions
// controllers against the hub's kube-apiserver, the scheme they share, and
// the installation of the API they serve (the fleetpulse.io CRDs and the
// hub's namespace).
//
// Each controller set adds itself to the manager with its own Setup before
// Run; the manager's informer caches are shared, and what a set caches of
// the apiserver's built-in types is narrowed when the manager is built
// (New's byObject), since one informer serves every set.
package controlplane
