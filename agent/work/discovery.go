package work

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// mapper is a RESTMapper over the cluster's discovery documents: /api,
// /api/v1, /apis and /apis/<group>/<version>, read as plain JSON. It does
// not use client-go's discovery package, which imports client-go's
// kubernetes scheme and with it every built-in API group (about a hundred
// packages the agent otherwise leaves out; see the README's facts on the
// agent's footprint). A kind it does not know, such as that of a CRD applied
// earlier in the same work, makes it read discovery again, at most once per
// minRefresh.
type mapper struct {
	base   string
	client *http.Client

	mu      sync.Mutex
	m       *meta.DefaultRESTMapper
	fetched time.Time
}

const minRefresh = time.Second

func newMapper(base string, client *http.Client) *mapper {
	return &mapper{base: strings.TrimSuffix(base, "/"), client: client}
}

// mapping returns the resource and scope of gvk, reading discovery again
// when gvk is unknown.
func (m *mapper) mapping(ctx context.Context, gvk schema.GroupVersionKind) (*meta.RESTMapping, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.m != nil {
		rm, err := m.m.RESTMapping(gvk.GroupKind(), gvk.Version)
		if err == nil || !meta.IsNoMatchError(err) || time.Since(m.fetched) < minRefresh {
			return rm, err
		}
	}
	if err := m.refresh(ctx); err != nil {
		return nil, err
	}
	return m.m.RESTMapping(gvk.GroupKind(), gvk.Version)
}

// refresh reads every group version's resources. A group version that
// fails (an aggregated API that is down) is left out, as kubectl does.
func (m *mapper) refresh(ctx context.Context) error {
	var core metav1.APIVersions
	if err := m.get(ctx, "/api", &core); err != nil {
		return fmt.Errorf("discovery: %w", err)
	}
	var groups metav1.APIGroupList
	if err := m.get(ctx, "/apis", &groups); err != nil {
		return fmt.Errorf("discovery: %w", err)
	}
	var paths []string
	var gvs []schema.GroupVersion
	for _, v := range core.Versions {
		paths, gvs = append(paths, "/api/"+v), append(gvs, schema.GroupVersion{Version: v})
	}
	for _, g := range groups.Groups {
		for _, v := range g.Versions {
			paths, gvs = append(paths, "/apis/"+v.GroupVersion), append(gvs, schema.GroupVersion{Group: g.Name, Version: v.Version})
		}
	}
	lists := make([]metav1.APIResourceList, len(paths))
	errs := make([]error, len(paths))
	var wg sync.WaitGroup
	sem := make(chan struct{}, 8)
	for i := range paths {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			errs[i] = m.get(ctx, paths[i], &lists[i])
		}()
	}
	wg.Wait()
	rm := meta.NewDefaultRESTMapper(nil)
	served := 0
	for i, l := range lists {
		if errs[i] != nil {
			continue
		}
		served++
		for _, r := range l.APIResources {
			if strings.Contains(r.Name, "/") { // a subresource
				continue
			}
			scope := meta.RESTScopeRoot
			if r.Namespaced {
				scope = meta.RESTScopeNamespace
			}
			singular := r.SingularName
			if singular == "" {
				singular = strings.ToLower(r.Kind)
			}
			rm.AddSpecific(gvs[i].WithKind(r.Kind), gvs[i].WithResource(r.Name), gvs[i].WithResource(singular), scope)
		}
	}
	if served == 0 && len(paths) > 0 {
		return fmt.Errorf("discovery: %w", errors.Join(errs...))
	}
	m.m, m.fetched = rm, time.Now()
	return nil
}

func (m *mapper) get(ctx context.Context, path string, out any) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, m.base+path, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Accept", "application/json")
	resp, err := m.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	if err != nil {
		return fmt.Errorf("GET %s: %w", path, err)
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", path, resp.Status)
	}
	if err := json.Unmarshal(body, out); err != nil {
		return fmt.Errorf("GET %s: %w", path, err)
	}
	return nil
}
