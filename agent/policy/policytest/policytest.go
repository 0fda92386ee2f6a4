// Package policytest has an in-memory policy Source and StatusSink for
// tests of the policy engine and of what wraps it.
package policytest

import (
	"context"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"sync"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/fleetpulse/fleetpulse/agent/policy"
	fleetv1 "github.com/fleetpulse/fleetpulse/api/v1alpha1"
)

// Source is a policy.Source holding policies in memory. Policies it is
// given get a UID and generation 1 when they have none, and the next
// generation when their spec changes, as an apiserver would.
type Source struct {
	mu       sync.Mutex
	policies map[string]*fleetv1.Policy
	changed  chan struct{}
	uids     int
}

var _ policy.Source = (*Source)(nil)

// NewSource returns a Source holding ps.
func NewSource(ps ...*fleetv1.Policy) *Source {
	s := &Source{policies: map[string]*fleetv1.Policy{}, changed: make(chan struct{})}
	s.Set(ps...)
	return s
}

// Policies implements policy.Source. The policies are the Source's own,
// which it never modifies (it replaces them), so that a benchmark measures
// the engine, not copies.
func (s *Source) Policies() ([]*fleetv1.Policy, <-chan struct{}) {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]*fleetv1.Policy, 0, len(s.policies))
	for _, p := range s.policies {
		out = append(out, p)
	}
	slices.SortFunc(out, func(a, b *fleetv1.Policy) int {
		return strings.Compare(a.Namespace+"/"+a.Name, b.Namespace+"/"+b.Name)
	})
	return out, s.changed
}

// Set adds or replaces policies.
func (s *Source) Set(ps ...*fleetv1.Policy) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, p := range ps {
		p = p.DeepCopy()
		key := p.Namespace + "/" + p.Name
		old := s.policies[key]
		switch {
		case old != nil && p.UID == "":
			p.UID = old.UID
		case p.UID == "":
			s.uids++
			p.UID = types.UID(fmt.Sprintf("uid-%d", s.uids))
		}
		switch {
		case old != nil && old.UID == p.UID && p.Generation <= old.Generation:
			p.Generation = old.Generation
			if !reflect.DeepEqual(old.Spec, p.Spec) {
				p.Generation++
			}
		case p.Generation == 0:
			p.Generation = 1
		}
		s.policies[key] = p
	}
	s.notify()
}

// Get returns a copy of a policy as the source holds it.
func (s *Source) Get(namespace, name string) *fleetv1.Policy {
	s.mu.Lock()
	defer s.mu.Unlock()
	if p := s.policies[namespace+"/"+name]; p != nil {
		return p.DeepCopy()
	}
	return nil
}

// MarkDeleting gives a policy a deletion timestamp, as the hub does to a
// replica it holds for pruning.
func (s *Source) MarkDeleting(namespace, name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if p := s.policies[namespace+"/"+name]; p != nil {
		p = p.DeepCopy()
		now := metav1.Now()
		p.DeletionTimestamp = &now
		s.policies[namespace+"/"+name] = p
		s.notify()
	}
}

// Remove takes a policy out of the set.
func (s *Source) Remove(namespace, name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.policies, namespace+"/"+name)
	s.notify()
}

func (s *Source) notify() {
	close(s.changed)
	s.changed = make(chan struct{})
}

// Sink is a policy.StatusSink that keeps the latest status of each policy
// and counts reports.
type Sink struct {
	mu       sync.Mutex
	statuses map[string]*fleetv1.PolicyStatus
	reports  map[string]int
	pruned   map[string]bool
	fail     error
}

var _ policy.StatusSink = (*Sink)(nil)

// NewSink returns an empty Sink.
func NewSink() *Sink {
	return &Sink{statuses: map[string]*fleetv1.PolicyStatus{}, reports: map[string]int{}, pruned: map[string]bool{}}
}

// Report implements policy.StatusSink.
func (s *Sink) Report(_ context.Context, p policy.Ref, st *fleetv1.PolicyStatus) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fail != nil {
		return s.fail
	}
	s.statuses[p.Key()] = st.DeepCopy()
	s.reports[p.Key()]++
	return nil
}

// Pruned implements policy.StatusSink.
func (s *Sink) Pruned(_ context.Context, p policy.Ref) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fail != nil {
		return s.fail
	}
	s.pruned[p.Key()] = true
	return nil
}

// Fail makes every call fail with err from now on (nil: succeed again).
func (s *Sink) Fail(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.fail = err
}

// Status returns a copy of the policy's latest status, nil before its first
// report.
func (s *Sink) Status(namespace, name string) *fleetv1.PolicyStatus {
	s.mu.Lock()
	defer s.mu.Unlock()
	if st := s.statuses[namespace+"/"+name]; st != nil {
		return st.DeepCopy()
	}
	return nil
}

// Reports counts the policy's reports.
func (s *Sink) Reports(namespace, name string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.reports[namespace+"/"+name]
}

// IsPruned reports whether the policy was reported pruned.
func (s *Sink) IsPruned(namespace, name string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.pruned[namespace+"/"+name]
}
