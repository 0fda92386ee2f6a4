// Package kubemapper maps kinds to resources on a cluster from its
// discovery documents (/api, /apis and each group version's resource list,
// read as plain JSON), refreshing them when asked for a kind it does not
// know. It stands in for client-go's discovery and restmapper packages,
// which import client-go's kubernetes scheme and with it every built-in API
// group, about a hundred packages the agent otherwise leaves out.
package kubemapper

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
	"k8s.io/client-go/rest"
)

// MinRefresh is the least time between two reads of discovery, so that a
// template naming a kind that does not exist cannot make every evaluation
// read it again.
const MinRefresh = 10 * time.Second

// Mapper maps kinds to resources. It is safe for concurrent use.
type Mapper struct {
	base   string
	client *http.Client

	// refreshing serialises reads of discovery; mu guards the map.
	refreshing sync.Mutex
	mu         sync.RWMutex
	m          *meta.DefaultRESTMapper
	fetched    time.Time
}

// New returns a Mapper of the cluster rc reaches; it reads nothing yet.
func New(rc *rest.Config) (*Mapper, error) {
	u, _, err := rest.DefaultServerUrlFor(rc)
	if err != nil {
		return nil, fmt.Errorf("apiserver URL: %w", err)
	}
	hc, err := rest.HTTPClientFor(rc)
	if err != nil {
		return nil, fmt.Errorf("apiserver client: %w", err)
	}
	return &Mapper{base: strings.TrimSuffix(u.String(), "/"), client: hc}, nil
}

// Mapping returns gvk's resource and scope. A kind it does not know makes it
// read discovery again (at most once per MinRefresh); a kind the cluster
// does not serve is a meta.NoKindMatchError (meta.IsNoMatchError).
func (m *Mapper) Mapping(ctx context.Context, gvk schema.GroupVersionKind) (*meta.RESTMapping, error) {
	m.mu.RLock()
	cur, fetched := m.m, m.fetched
	m.mu.RUnlock()
	if cur != nil {
		rm, err := cur.RESTMapping(gvk.GroupKind(), gvk.Version)
		if err == nil || !meta.IsNoMatchError(err) || time.Since(fetched) < MinRefresh {
			return rm, err
		}
	}
	m.refreshing.Lock()
	defer m.refreshing.Unlock()
	m.mu.RLock()
	cur, again := m.m, m.fetched != fetched // another caller read discovery meanwhile
	m.mu.RUnlock()
	if !again {
		rm, err := m.read(ctx)
		if err != nil {
			return nil, err
		}
		m.mu.Lock()
		m.m, m.fetched = rm, time.Now()
		m.mu.Unlock()
		cur = rm
	}
	return cur.RESTMapping(gvk.GroupKind(), gvk.Version)
}

// read reads every group version's resources. A group version that fails
// (an aggregated API that is down) is left out, as kubectl does.
func (m *Mapper) read(ctx context.Context) (*meta.DefaultRESTMapper, error) {
	var core metav1.APIVersions
	if err := m.get(ctx, "/api", &core); err != nil {
		return nil, fmt.Errorf("discovery: %w", err)
	}
	var groups metav1.APIGroupList
	if err := m.get(ctx, "/apis", &groups); err != nil {
		return nil, fmt.Errorf("discovery: %w", err)
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
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			errs[i] = m.get(ctx, paths[i], &lists[i])
		})
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
		return nil, fmt.Errorf("discovery: %w", errors.Join(errs...))
	}
	return rm, nil
}

func (m *Mapper) get(ctx context.Context, path string, out any) error {
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
