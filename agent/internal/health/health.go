// Package health folds what an agent controller knows of its own trouble
// into one report for whoever runs it (in the agent, the Collector's
// component status): each source of trouble (the hub, the cluster, the
// controller's records) sets or clears its error, and the report function
// hears the joined errors of every source whenever they change, nil once
// none is left.
package health

import (
	"errors"
	"slices"
	"sync"
)

// Health is safe for use by several goroutines. A nil *Health, or one with
// a nil report function, reports nothing.
type Health struct {
	report func(error)

	mu   sync.Mutex
	errs map[string]error
	last string // what was last reported; "" for healthy
}

// New returns a Health that reports to report.
func New(report func(error)) *Health {
	return &Health{report: report, errs: map[string]error{}}
}

// Set records source's error, or clears it when err is nil, and reports
// when the whole changed. Reports are made in the order of the calls.
func (h *Health) Set(source string, err error) {
	if h == nil || h.report == nil {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if err == nil {
		delete(h.errs, source)
	} else {
		h.errs[source] = err
	}
	sources := make([]string, 0, len(h.errs))
	for s := range h.errs {
		sources = append(sources, s)
	}
	slices.Sort(sources)
	all := make([]error, 0, len(sources))
	for _, s := range sources {
		all = append(all, h.errs[s])
	}
	joined := errors.Join(all...)
	msg := ""
	if joined != nil {
		msg = joined.Error()
	}
	if msg == h.last {
		return
	}
	h.last = msg
	h.report(joined)
}
