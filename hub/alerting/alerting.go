package alerting

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"path/filepath"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/config"
	"github.com/prometheus/prometheus/discovery/targetgroup"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/notifier"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/rules"
	"github.com/prometheus/prometheus/storage"
	promapi "github.com/prometheus/prometheus/web/api/v1"
)

// Config configures rule evaluation and alert delivery.
type Config struct {
	// RuleFiles are globs of Prometheus rule files.
	RuleFiles []string
	// EvaluationInterval is how often every group is evaluated.
	EvaluationInterval time.Duration
	// AlertmanagerURLs receive alerts (http://host:port); none keeps alerts local.
	AlertmanagerURLs []string
	// ExternalURL is where alerts link back to (the hub's HTTP address).
	ExternalURL string
	// ExternalLabels are added to every alert sent, e.g. the hub's region.
	ExternalLabels map[string]string
}

// Validate returns every problem with the configuration.
func (c Config) Validate() error {
	var errs []error
	if c.EvaluationInterval <= 0 {
		errs = append(errs, fmt.Errorf("rule evaluation interval must be positive, got %s", c.EvaluationInterval))
	}
	for _, u := range c.AlertmanagerURLs {
		if p, err := url.Parse(u); err != nil || (p.Scheme != "http" && p.Scheme != "https") || p.Host == "" {
			errs = append(errs, fmt.Errorf("alertmanager URL %q: want http(s)://host:port", u))
		}
	}
	for name := range c.ExternalLabels {
		if !model.LegacyValidation.IsValidLabelName(name) {
			errs = append(errs, fmt.Errorf("external label name %q is not a valid label name", name))
		}
	}
	for _, g := range c.RuleFiles {
		if _, err := filepath.Glob(g); err != nil {
			errs = append(errs, fmt.Errorf("rule file pattern %q: %w", g, err))
		}
	}
	return errors.Join(errs...)
}

// Alerting runs the rules manager and the notifier.
type Alerting struct {
	cfg      Config
	logger   *slog.Logger
	rules    *rules.Manager
	notifier *notifier.Manager
	// evaluated ticks after every group evaluation, for controllers that act
	// on alerts to look right away rather than poll.
	evaluated chan struct{}
	// part, with several replicas, splits the groups' work between them;
	// fleet reads every cluster's series.
	part  *partition
	fleet storage.Queryable
	peers func(context.Context) ([]Alert, error)
}

// Alert is one active alert instance of the hub's rules.
type Alert struct {
	Name        string
	Labels      map[string]string // alertname included
	Annotations map[string]string
	Value       float64
	Firing      bool // false: pending (its "for" has not passed)
	ActiveAt    time.Time
}

// Local returns the pending and firing alerts of the groups this replica
// evaluates: with several replicas, those of its clusters and, while it
// leads, of the fleet-wide groups.
func (a *Alerting) Local() []Alert {
	var out []Alert
	for _, g := range a.evaluatedGroups() {
		for _, r := range g.AlertingRules() {
			for _, al := range r.ActiveAlerts() {
				out = append(out, Alert{Name: r.Name(), Labels: al.Labels.Map(), Annotations: al.Annotations.Map(),
					Value: al.Value, Firing: al.State == rules.StateFiring, ActiveAt: al.ActiveAt})
			}
		}
	}
	return out
}

// Active returns every pending and firing alert of the fleet: this
// replica's and, with peers, theirs; an alert several replicas hold (a
// replicated cluster, one that is changing owner) once, firing if one
// holds it firing. A peer that cannot answer fails it, rather than
// leave its clusters' alerts out.
func (a *Alerting) Active(ctx context.Context) ([]Alert, error) {
	local := a.Local()
	if a.peers == nil {
		return local, nil
	}
	remote, err := a.peers(ctx)
	if err != nil {
		return nil, err
	}
	return mergeAlerts(local, remote), nil
}

// Evaluated ticks (coalesced) after rule groups are evaluated.
func (a *Alerting) Evaluated() <-chan struct{} { return a.evaluated }

func (a *Alerting) evalIteration(ctx context.Context, g *rules.Group, ts time.Time) {
	if a.part == nil {
		rules.DefaultEvalIterationFunc(ctx, g, ts)
		a.tick()
		return
	}
	s := a.part.groupScope(g)
	if s == scopeLeader && !a.part.leads() {
		return
	}
	before := activeAlerts(g)
	rules.DefaultEvalIterationFunc(a.part.withScope(ctx, s), g, ts)
	if err := carryOn(ctx, g, ts, a.fleet, before); err != nil {
		a.logger.Warn("carry on the 'for' state of alerts another replica evaluated", "group", g.Name(), "err", err)
	}
	a.tick()
}

func (a *Alerting) tick() {
	select {
	case a.evaluated <- struct{}{}:
	default:
	}
}

// New builds the rules manager over q (read) and app (recording rules'
// output, ALERTS and ALERTS_FOR_STATE), sharing the engine with the query
// API. It starts nothing.
func New(cfg Config, engine *promql.Engine, q storage.Queryable, app storage.Appendable, logger *slog.Logger, reg prometheus.Registerer,
	opts ...Option) (*Alerting, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("invalid alerting configuration: %w", err)
	}
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	n := notifier.NewManager(&notifier.Options{QueueCapacity: 10000, Registerer: reg}, model.UTF8Validation, logger.With("component", "notifier"))
	notify, read := rules.SendAlerts(n, cfg.ExternalURL), q
	if o.part != nil {
		notify, app = o.part.notify(notify), partitionedAppendable{Appendable: app, p: o.part}
		read = ownedQueryable{Queryable: q, p: o.part}
	}
	m := rules.NewManager(&rules.ManagerOptions{
		QueryFunc:  rules.EngineQueryFunc(engine, read),
		NotifyFunc: notify,
		Context:    context.Background(),
		Appendable: app,
		Queryable:  q,
		Logger:     logger.With("component", "rules"),
		Registerer: reg,
		// Prometheus's defaults: an alert pending before a restart resumes its
		// "for" from ALERTS_FOR_STATE if the hub was down less than an hour.
		OutageTolerance: time.Hour,
		ForGracePeriod:  10 * time.Minute,
		ResendDelay:     time.Minute,
	})
	return &Alerting{cfg: cfg, logger: logger, rules: m, notifier: n, evaluated: make(chan struct{}, 1),
		part: o.part, fleet: q, peers: o.peers}, nil
}

// Retriever serves the API's /rules and /alerts: the groups this replica
// evaluates.
func (a *Alerting) Retriever() func(context.Context) promapi.RulesRetriever {
	return func(context.Context) promapi.RulesRetriever { return evaluatedHere{a} }
}

// evaluatedHere are the groups and alerting rules this replica evaluates.
type evaluatedHere struct{ a *Alerting }

func (e evaluatedHere) RuleGroups() []*rules.Group { return e.a.evaluatedGroups() }

func (e evaluatedHere) AlertingRules() []*rules.AlertingRule {
	var out []*rules.AlertingRule
	for _, g := range e.RuleGroups() {
		out = append(out, g.AlertingRules()...)
	}
	return out
}

// evaluatedGroups are the loaded groups this replica evaluates: with
// several replicas, the per-cluster ones and, while it leads, the
// fleet-wide ones.
func (a *Alerting) evaluatedGroups() []*rules.Group {
	groups := a.rules.RuleGroups()
	if a.part == nil {
		return groups
	}
	out := groups[:0:0]
	for _, g := range groups {
		if a.part.evaluates(g) {
			out = append(out, g)
		}
	}
	return out
}

// Alertmanagers serves the API's /alertmanagers: those the notifier sends
// to.
func (a *Alerting) Alertmanagers() func(context.Context) promapi.AlertmanagerRetriever {
	return func(context.Context) promapi.AlertmanagerRetriever { return a.notifier }
}

// Run loads the rule files and evaluates them until ctx ends.
func (a *Alerting) Run(ctx context.Context) error {
	if err := a.applyAlertmanagers(); err != nil {
		return err
	}
	targets := make(chan map[string][]*targetgroup.Group, 1)
	targets <- a.targetGroups()
	go a.notifier.Run(targets)
	go a.rules.Run()
	defer func() {
		a.rules.Stop()
		a.notifier.Stop()
	}()
	if err := a.Reload(); err != nil {
		return err
	}
	<-ctx.Done()
	return nil
}

// Reload reads the rule files again; on error the loaded groups stay.
func (a *Alerting) Reload() error {
	var files []string
	for _, g := range a.cfg.RuleFiles {
		m, _ := filepath.Glob(g) // patterns were validated
		files = append(files, m...)
	}
	if err := a.rules.Update(a.cfg.EvaluationInterval, files, labels.EmptyLabels(), a.cfg.ExternalURL, a.evalIteration); err != nil {
		return fmt.Errorf("load rule files %v: %w", files, err)
	}
	if a.part != nil {
		a.part.forget()
	}
	a.logger.Info("rules loaded", "files", len(files), "groups", len(a.rules.RuleGroups()))
	return nil
}

func (a *Alerting) applyAlertmanagers() error {
	cfg := config.DefaultConfig
	cfg.GlobalConfig.ExternalLabels = labels.FromMap(a.cfg.ExternalLabels)
	for _, raw := range a.cfg.AlertmanagerURLs {
		am := config.DefaultAlertmanagerConfig
		u, _ := url.Parse(raw) // validated
		am.Scheme = u.Scheme
		am.PathPrefix = u.Path
		cfg.AlertingConfig.AlertmanagerConfigs = append(cfg.AlertingConfig.AlertmanagerConfigs, &am)
	}
	return a.notifier.ApplyConfig(&cfg)
}

// targetGroups are the Alertmanagers as static targets, keyed as the
// notifier names its configured sets.
func (a *Alerting) targetGroups() map[string][]*targetgroup.Group {
	out := map[string][]*targetgroup.Group{}
	for i, raw := range a.cfg.AlertmanagerURLs {
		u, _ := url.Parse(raw)
		out[fmt.Sprintf("config-%d", i)] = []*targetgroup.Group{{
			Source:  raw,
			Targets: []model.LabelSet{{model.AddressLabel: model.LabelValue(u.Host)}},
		}}
	}
	return out
}
