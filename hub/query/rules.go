package query

import (
	"github.com/prometheus/prometheus/rules"
)

// noRules is an empty rules retriever, until the hub's rule manager runs.
type noRules struct{}

func (noRules) RuleGroups() []*rules.Group           { return nil }
func (noRules) AlertingRules() []*rules.AlertingRule { return nil }
