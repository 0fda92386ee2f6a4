package workset

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"regexp"
	"strconv"
	"strings"
	"text/template"
	"time"

	fleetv1 "github.com/fleetpulse/fleetpulse/api/v1alpha1"
)

// Gate defaults.
const (
	DefaultGateInterval = 30 * time.Second
	NoDataPause         = "Pause"
	NoDataFail          = "Fail"
	NoDataPass          = "Pass"
)

// condition is "value <op> <number>".
type condition struct {
	text string
	op   string
	num  float64
}

var conditionRE = regexp.MustCompile(`^\s*(?:value|result)\s*(<=|>=|==|!=|<|>)\s*(\S+)\s*$`)

// parseCondition reads a gate condition; "" is no condition.
func parseCondition(s string) (*condition, error) {
	if strings.TrimSpace(s) == "" {
		return nil, nil
	}
	m := conditionRE.FindStringSubmatch(s)
	if m == nil {
		return nil, fmt.Errorf("condition %q: want value <op> <number>, with <op> one of < <= > >= == !=", s)
	}
	n, err := strconv.ParseFloat(m[2], 64)
	if err != nil || math.IsNaN(n) {
		return nil, fmt.Errorf("condition %q: %q is not a number", s, m[2])
	}
	return &condition{text: strings.TrimSpace(s), op: m[1], num: n}, nil
}

func (c *condition) holds(v float64) bool {
	if math.IsNaN(v) {
		return false // NaN compares false, and never passes a gate
	}
	switch c.op {
	case "<":
		return v < c.num
	case "<=":
		return v <= c.num
	case ">":
		return v > c.num
	case ">=":
		return v >= c.num
	case "==":
		return v == c.num
	default:
		return v != c.num
	}
}

// gate is a parsed RolloutGate with its defaults filled in.
type gate struct {
	spec             fleetv1.RolloutGate
	success, failure *condition
	query            *template.Template
	interval         time.Duration
	count            int32
	noData           string
}

// parseGate checks a gate and fills its defaults.
func parseGate(g fleetv1.RolloutGate) (*gate, error) {
	var errs []error
	out := &gate{spec: g, interval: g.Interval.Duration, count: g.Count, noData: g.NoData}
	var err error
	if out.success, err = parseCondition(g.SuccessCondition); err != nil {
		errs = append(errs, err)
	}
	if out.failure, err = parseCondition(g.FailureCondition); err != nil {
		errs = append(errs, err)
	}
	if g.SuccessCondition == "" && g.FailureCondition == "" {
		errs = append(errs, errors.New("a successCondition or a failureCondition is required"))
	}
	if strings.TrimSpace(g.Query) == "" {
		errs = append(errs, errors.New("a query is required"))
	} else if out.query, err = template.New(g.Name).Option("missingkey=error").Parse(g.Query); err != nil {
		errs = append(errs, fmt.Errorf("query template: %w", err))
	}
	if out.interval <= 0 {
		out.interval = DefaultGateInterval
	}
	if out.count <= 0 {
		out.count = 1
	}
	switch out.noData {
	case "":
		out.noData = NoDataPause
	case NoDataPause, NoDataFail, NoDataPass:
	default:
		errs = append(errs, fmt.Errorf("noData %q: want Pause, Fail or Pass", g.NoData))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("gate %q: %w", g.Name, err)
	}
	return out, nil
}

// queryVars are the fields a gate's query template reads.
type queryVars struct {
	Clusters         string
	ClusterNames     []string
	Revision         int64
	PreviousRevision int64
	TemplateHash     string
	Stage            int32
	Namespace, Name  string
}

func clusterAlternation(names []string) string {
	quoted := make([]string, len(names))
	for i, n := range names {
		quoted[i] = regexp.QuoteMeta(n)
	}
	return strings.Join(quoted, "|")
}

// expand fills in the gate's query.
func (g *gate) expand(v queryVars) (string, error) {
	var b bytes.Buffer
	if err := g.query.Execute(&b, v); err != nil {
		return "", fmt.Errorf("gate %q: fill in the query: %w", g.spec.Name, err)
	}
	return b.String(), nil
}

// outcome is one measurement of one cluster.
type outcome int

const (
	outcomeSuccessful outcome = iota
	outcomeFailed
	outcomeInconclusive
)

func (o outcome) String() string {
	return [...]string{"successful", "failed", "inconclusive"}[o]
}

// classify decides a measured value; ok false means no sample.
func (g *gate) classify(v float64, ok bool) (outcome, string) {
	if !ok {
		switch g.noData {
		case NoDataFail:
			return outcomeFailed, "no data (noData: Fail)"
		case NoDataPass:
			return outcomeSuccessful, "no data (noData: Pass)"
		default:
			return outcomeInconclusive, "no data (noData: Pause)"
		}
	}
	switch {
	case g.failure != nil && g.failure.holds(v):
		return outcomeFailed, g.failure.text
	case g.failure == nil && !g.success.holds(v):
		return outcomeFailed, "not " + g.success.text
	case g.success != nil && g.success.holds(v):
		return outcomeSuccessful, g.success.text
	case g.success == nil:
		return outcomeSuccessful, "not " + g.failure.text
	default:
		return outcomeInconclusive, fmt.Sprintf("neither %s nor %s", g.success.text, g.failure.text)
	}
}

// gateState is where a gate stands for one cluster.
type gateState int

const (
	gateRunning gateState = iota
	gatePassed
	gateFailed
	gateInconclusive
)

func (g *gate) state(c *fleetv1.ClusterGateStatus) gateState {
	switch {
	case c == nil:
		return gateRunning
	case c.Failed > g.spec.FailureLimit:
		return gateFailed
	case c.Inconclusive > g.spec.InconclusiveLimit:
		return gateInconclusive
	case c.Successful >= g.count:
		return gatePassed
	default:
		return gateRunning
	}
}

func formatValue(v float64) string { return strconv.FormatFloat(v, 'g', 6, 64) }

// gateResult is one run of a gate's query over a stage.
type gateResult struct {
	stage int32
	gate  string
	query string
	at    time.Time
	// values by cluster label; all is a value without one, for every
	// cluster.
	values map[string]float64
	all    *float64
	err    error
}

// value is a cluster's measured value.
func (r *gateResult) value(cluster string) (float64, bool) {
	if v, ok := r.values[cluster]; ok {
		return v, true
	}
	if r.all != nil {
		return *r.all, true
	}
	return 0, false
}
