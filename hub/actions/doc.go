// Package actions turns the hub's telemetry into control-plane actions. Its
// AlertTaint controller taints the ManagedClusters that an alert of the
// hub's own rules fires for, after a hold time, within a bound, never
// tainting the last cluster that could take work, and untaints them once the
// alert has stayed resolved; each action is an Event and a status entry
// naming the alert, its labels and its value.
package actions
