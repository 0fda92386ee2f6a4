package actions

import (
	"context"

	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/manager"
)

// wakeOnEvaluation returns a channel that, after each rule evaluation,
// carries every object rules lists, so that a controller source on it
// reconciles every rule within one evaluation of an alert changing.
func wakeOnEvaluation(mgr manager.Manager, alerts AlertSource, rules func(context.Context) ([]client.Object, error)) (<-chan event.GenericEvent, error) {
	wake := make(chan event.GenericEvent, 64)
	err := mgr.Add(manager.RunnableFunc(func(ctx context.Context) error {
		for {
			select {
			case <-ctx.Done():
				return nil
			case <-alerts.Evaluated():
			}
			objs, err := rules(ctx)
			if err != nil {
				continue
			}
			for _, o := range objs {
				select {
				case wake <- event.GenericEvent{Object: o}:
				default: // the queue has it already or will on the next tick
				}
			}
		}
	}))
	return wake, err
}
