// Package chartsource renders a Helm chart into the manifests of a
// ManifestWorkSet revision. The hub fetches the chart from an HTTP chart
// repository (index.yaml, then the archive it names) or an OCI registry,
// loads it with Helm's chart loader, merges the given values over the
// chart's own and renders the templates with Helm's engine — as `helm
// template` does, without a cluster: capabilities are Helm's defaults,
// lookup returns nothing, hooks are left out (no release runs them).
//
// What is fetched and rendered is bounded (Limits): the index and archive
// sizes, the fetch and render times, the number and total size of the
// rendered objects, so one chart cannot stall or bloat the hub, and a
// revision still fits in one object of the hub's store. Every failure is an
// *Error whose Reason names what was wrong, for the set's status.
package chartsource
