// Package controller is what the agent's controller extensions share
// (extensions/registration, extensions/work, and any controller of agent/
// that runs in the agent's Collector): a Runner that keeps a controller's
// loop going from the extension's Start to its Shutdown, turns what the
// controller knows of its health into the extension's component status,
// and stops the agent when the loop ends with an error; and a log/slog
// handler that writes the controllers' logs through the Collector's logger.
//
// The pattern, for a controller package agent/<c> with New, an optional
// blocking Start, Run(ctx) and a Config.ReportHealth hook:
//
//	func (e *ext) Start(ctx context.Context, host component.Host) error {
//		// e.runner = controller.NewRunner(set.ID, stop) when the factory creates e
//		c, err := agentc.New(agentc.Config{..., Logger: controller.Logger(e.set.Logger), ReportHealth: e.runner.ReportHealth})
//		if err != nil {
//			return err
//		}
//		// publish c's counts through the generated TelemetryBuilder, then:
//		e.runner.Go(host, c.Run)
//		return nil
//	}
//
//	func (e *ext) Ready() error                       { e.runner.Ready(); return nil }
//	func (e *ext) Shutdown(ctx context.Context) error { return e.runner.Shutdown(ctx) }
package controller
