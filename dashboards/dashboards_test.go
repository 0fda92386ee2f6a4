package dashboards

import (
	"io/fs"
	"strings"
	"testing"

	"github.com/prometheus/prometheus/promql/parser"
	"sigs.k8s.io/yaml"
)

// grafanaVars are the built-in variables Grafana substitutes itself.
var grafanaVars = map[string]string{"__rate_interval": "1m", "__interval": "15s", "__range": "1h"}

// TestDashboardsAreWellFormed checks what Grafana would only show when a
// user opens a panel: every query parses once its variables are substituted,
// refers only to variables the dashboard defines, and every panel reads the
// dashboard's datasource variable and fits the 24-column grid.
func TestDashboardsAreWellFormed(t *testing.T) {
	ds, err := Load()
	if err != nil {
		t.Fatal(err)
	}
	wantTitles := map[string]bool{"Fleetpulse / Fleet overview": false, "Fleetpulse / Cluster detail": false, "Fleetpulse / Agent health": false,
		"Fleetpulse / Policy compliance": false, "Fleetpulse / Rollouts": false}
	uids := map[string]bool{}
	for _, d := range ds {
		wantTitles[d.Title] = true
		if uids[d.UID] {
			t.Errorf("uid %q used twice", d.UID)
		}
		uids[d.UID] = true
		vars := map[string]string{}
		for k, v := range grafanaVars {
			vars[k] = v
		}
		for _, v := range d.Templating.List {
			vars[v.Name] = "x"
			if v.Type == "query" {
				if _, _, ok := v.LabelValuesQuery(); !ok {
					t.Errorf("%s: variable %s: definition %q is not label_values(selector, label)", d.Title, v.Name, v.Definition)
				}
			}
		}
		ids := map[int]bool{}
		for _, p := range d.Panels {
			if ids[p.ID] {
				t.Errorf("%s: panel id %d used twice", d.Title, p.ID)
			}
			ids[p.ID] = true
			if p.Datasource.UID != "${datasource}" {
				t.Errorf("%s / %s: datasource %q, want ${datasource}", d.Title, p.Title, p.Datasource.UID)
			}
			if p.GridPos.X+p.GridPos.W > 24 || p.GridPos.W == 0 || p.GridPos.H == 0 {
				t.Errorf("%s / %s: grid position %+v does not fit 24 columns", d.Title, p.Title, p.GridPos)
			}
			if len(p.Targets) == 0 {
				t.Errorf("%s / %s: no query", d.Title, p.Title)
			}
			for _, tg := range p.Targets {
				expr, err := Expand(tg.Expr, vars)
				if err != nil {
					t.Errorf("%s / %s / %s: %v", d.Title, p.Title, tg.RefID, err)
					continue
				}
				if _, err := parser.ParseExpr(expr); err != nil {
					t.Errorf("%s / %s / %s: %q: %v", d.Title, p.Title, tg.RefID, expr, err)
				}
			}
		}
	}
	for title, found := range wantTitles {
		if !found {
			t.Errorf("dashboard %q is missing", title)
		}
	}
}

// TestProvisioningFiles checks the datasource is the one the dashboards
// default to and the dashboard provider points at a folder.
func TestProvisioningFiles(t *testing.T) {
	b, err := fs.ReadFile(Files(), "provisioning/datasources/fleetpulse.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var dsFile struct {
		Datasources []struct{ UID, Type, URL string } `json:"datasources"`
	}
	if err := yaml.Unmarshal(b, &dsFile); err != nil {
		t.Fatal(err)
	}
	if len(dsFile.Datasources) != 1 || dsFile.Datasources[0].UID != "fleetpulse" || dsFile.Datasources[0].Type != "prometheus" {
		t.Errorf("datasources %+v, want one prometheus datasource with uid fleetpulse", dsFile.Datasources)
	}
	b, err = fs.ReadFile(Files(), "provisioning/dashboards/fleetpulse.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), "path:") {
		t.Error("dashboard provider names no path")
	}
}

func TestExpand(t *testing.T) {
	got, err := Expand(`rate(x{cluster=~"$cluster", a="${a}", b="[[b]]"}[$__rate_interval])`, map[string]string{"cluster": "(a|b)", "a": "1", "b": "2", "__rate_interval": "1m"})
	if err != nil || got != `rate(x{cluster=~"(a|b)", a="1", b="2"}[1m])` {
		t.Errorf("Expand = %q, %v", got, err)
	}
	if _, err := Expand(`x{c="$nope"}`, nil); err == nil || !strings.Contains(err.Error(), "nope") {
		t.Errorf("Expand of an undefined variable: %v, want an error naming it", err)
	}
}
