// Package actions turns the hub's telemetry into control-plane actions. Its
// AlertTaint controller taints the ManagedClusters that an alert of the
// hub's own rules fires for, after a hold time, within a bound, never
// tainting the last cluster that could take work, and untaints them once the
// alert has stayed resolved; each action is an Event and a status entry
// naming the alert, its labels and its value.
//
// A cluster records which AlertTaint owns which of its taints (annotation
// fleetpulse.io/alert-taints), so that a taint outlives neither its rule nor
// the rule's key: a changed taint key or effect moves the taint, a deleted
// AlertTaint (held by a finalizer) takes its taints off every cluster first,
// and a taint whose owner is gone is removed by the next reconcile of any
// rule. A taint stays while any rule owns it; taints no rule owns (set by
// hand, by registration) are never removed, though a rule that wants a taint
// already there takes it over.
package actions
