// Package charttest serves Helm charts to tests from a real chart
// repository: archives packaged by Helm's chartutil.Save and an index.yaml
// built by Helm's repo.IndexDirectory, over an httptest server, optionally
// behind basic auth.
package charttest

import (
	"crypto/subtle"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"

	"helm.sh/helm/v3/pkg/chart"
	"helm.sh/helm/v3/pkg/chartutil"
	"helm.sh/helm/v3/pkg/repo"
)

// Chart builds a chart of the given templates (file name → text) and
// values.yaml text.
func Chart(name, version, values string, templates map[string]string) *chart.Chart {
	ch := &chart.Chart{Metadata: &chart.Metadata{APIVersion: chart.APIVersionV2, Name: name, Version: version, Type: "application"}}
	if values != "" {
		ch.Raw = append(ch.Raw, &chart.File{Name: chartutil.ValuesfileName, Data: []byte(values)})
		v, err := chartutil.ReadValues([]byte(values))
		if err != nil {
			panic(err)
		}
		ch.Values = v
	}
	for n, text := range templates {
		ch.Templates = append(ch.Templates, &chart.File{Name: filepath.Join("templates", n), Data: []byte(text)})
	}
	return ch
}

// Repo is a chart repository being served.
type Repo struct {
	URL string
	dir string
	t   testing.TB
}

// Serve starts a repository with the charts; user and password, when not
// empty, are required of every request.
func Serve(t testing.TB, user, password string, charts ...*chart.Chart) *Repo {
	t.Helper()
	r := &Repo{dir: t.TempDir(), t: t}
	files := http.FileServer(http.Dir(r.dir))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if user != "" {
			u, p, ok := req.BasicAuth()
			if !ok || subtle.ConstantTimeCompare([]byte(u), []byte(user)) != 1 || subtle.ConstantTimeCompare([]byte(p), []byte(password)) != 1 {
				w.Header().Set("WWW-Authenticate", `Basic realm="charts"`)
				http.Error(w, "unauthorized", http.StatusUnauthorized)
				return
			}
		}
		files.ServeHTTP(w, req)
	}))
	t.Cleanup(srv.Close)
	r.URL = srv.URL
	r.Add(charts...)
	return r
}

// Add packages more charts into the repository and rewrites its index.
func (r *Repo) Add(charts ...*chart.Chart) {
	r.t.Helper()
	for _, ch := range charts {
		if _, err := chartutil.Save(ch, r.dir); err != nil {
			r.t.Fatalf("package chart %s: %v", ch.Name(), err)
		}
	}
	index, err := repo.IndexDirectory(r.dir, r.URL)
	if err != nil {
		r.t.Fatalf("index charts: %v", err)
	}
	if err := index.WriteFile(filepath.Join(r.dir, "index.yaml"), 0o644); err != nil {
		r.t.Fatalf("write index: %v", err)
	}
}

// Path is a file of the repository on disk, for tests that spoil one.
func (r *Repo) Path(name string) string { return filepath.Join(r.dir, name) }

// WriteFile replaces a file of the repository.
func (r *Repo) WriteFile(name string, data []byte) {
	r.t.Helper()
	if err := os.WriteFile(r.Path(name), data, 0o644); err != nil {
		r.t.Fatal(err)
	}
}
