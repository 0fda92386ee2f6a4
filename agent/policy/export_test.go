package policy

import "slices"

// Watched returns the resources the engine watches, sorted.
func (e *Engine) Watched() []string {
	e.watches.mu.Lock()
	defer e.watches.mu.Unlock()
	var out []string
	for gvr := range e.watches.informers {
		out = append(out, gvr.Resource)
	}
	slices.Sort(out)
	return out
}
