// Package dashboards ships Fleetpulse's Grafana dashboards (Fleet overview,
// Cluster detail, Agent health, Policy compliance, Rollouts) and the
// provisioning files that load them with the hub as a Prometheus datasource. It also reads them back, so that
// tests and benchmarks can run every panel's query against a hub.
package dashboards

import (
	"embed"
	"encoding/json"
	"fmt"
	"io/fs"
	"regexp"
	"sort"
	"strings"
)

//go:embed *.json provisioning
var files embed.FS

// Files are the dashboards (*.json) and provisioning/ as shipped.
func Files() fs.FS { return files }

// Dashboard is the part of a Grafana dashboard that queries the datasource.
type Dashboard struct {
	UID        string `json:"uid"`
	Title      string `json:"title"`
	Templating struct {
		List []Variable `json:"list"`
	} `json:"templating"`
	Panels []Panel `json:"panels"`
}

// Variable is a template variable.
type Variable struct {
	Name       string `json:"name"`
	Type       string `json:"type"`
	Definition string `json:"definition"`
	IncludeAll bool   `json:"includeAll"`
	AllValue   string `json:"allValue"`
}

// Panel is one panel and its queries.
type Panel struct {
	ID         int    `json:"id"`
	Title      string `json:"title"`
	Type       string `json:"type"`
	Datasource struct {
		UID string `json:"uid"`
	} `json:"datasource"`
	GridPos struct {
		X, Y, W, H int
	} `json:"gridPos"`
	Targets []Target `json:"targets"`
}

// Target is one PromQL query of a panel.
type Target struct {
	RefID   string `json:"refId"`
	Expr    string `json:"expr"`
	Instant bool   `json:"instant"`
}

// Load reads every shipped dashboard, ordered by file name.
func Load() ([]Dashboard, error) {
	names, err := fs.Glob(files, "*.json")
	if err != nil {
		return nil, err
	}
	sort.Strings(names)
	out := make([]Dashboard, 0, len(names))
	for _, name := range names {
		b, err := fs.ReadFile(files, name)
		if err != nil {
			return nil, err
		}
		var d Dashboard
		if err := json.Unmarshal(b, &d); err != nil {
			return nil, fmt.Errorf("dashboard %s: %w", name, err)
		}
		out = append(out, d)
	}
	return out, nil
}

var labelValues = regexp.MustCompile(`^label_values\(\s*([^,]+?)\s*,\s*([A-Za-z_][A-Za-z0-9_]*)\s*\)$`)

// LabelValuesQuery splits a "label_values(selector, label)" variable
// definition, the form every shipped query variable uses.
func (v Variable) LabelValuesQuery() (selector, label string, ok bool) {
	m := labelValues.FindStringSubmatch(strings.TrimSpace(v.Definition))
	if m == nil {
		return "", "", false
	}
	return m[1], m[2], true
}

var variableRef = regexp.MustCompile(`\$\{(\w+)(?::\w+)?\}|\$(\w+)|\[\[(\w+)\]\]`)

// Expand substitutes template variables in expr as Grafana does: values are
// used as given, so a multi-value variable's value is the regexp Grafana
// would build (e.g. "(a|b)" or the variable's all-value). Grafana's own
// $__interval, $__rate_interval and $__range must be in vars too.
func Expand(expr string, vars map[string]string) (string, error) {
	var missing []string
	out := variableRef.ReplaceAllStringFunc(expr, func(ref string) string {
		m := variableRef.FindStringSubmatch(ref)
		name := m[1] + m[2] + m[3]
		v, ok := vars[name]
		if !ok {
			missing = append(missing, name)
			return ref
		}
		return v
	})
	if len(missing) > 0 {
		return "", fmt.Errorf("variables %v are not defined", missing)
	}
	return out, nil
}

// Variables returns the names of the variables expr refers to.
func Variables(expr string) []string {
	var names []string
	for _, m := range variableRef.FindAllStringSubmatch(expr, -1) {
		names = append(names, m[1]+m[2]+m[3])
	}
	return names
}
