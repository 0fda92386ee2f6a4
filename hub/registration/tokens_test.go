package registration

import (
	"context"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	"github.com/fleetpulse/fleetpulse/hub/controlplane"
)

// TestTokenUsageUnderConcurrentRegistrations counts every registration of a
// burst made with one token: concurrent counts are written together rather
// than conflicting on the token's Secret until retries run out.
func TestTokenUsageUnderConcurrentRegistrations(t *testing.T) {
	ctx := context.Background()
	// Every read takes a while, as an apiserver's does, so that writes of
	// registrations counted one by one would conflict.
	var writes atomic.Int64
	c := fake.NewClientBuilder().WithScheme(controlplane.Scheme()).WithInterceptorFuncs(interceptor.Funcs{
		Get: func(ctx context.Context, c client.WithWatch, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
			time.Sleep(2 * time.Millisecond)
			return c.Get(ctx, key, obj, opts...)
		},
		Update: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.UpdateOption) error {
			writes.Add(1)
			return c.Update(ctx, obj, opts...)
		},
	}).Build()
	tokens := NewTokens(c, "fleetpulse-system")
	_, tok, err := tokens.Create(ctx, TokenOptions{TTL: time.Hour, AutoAccept: true})
	if err != nil {
		t.Fatal(err)
	}
	const registrations = 200
	var wg sync.WaitGroup
	errs := make(chan error, registrations)
	for range registrations {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := tokens.Used(ctx, tok.ID); err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("count a registration: %v", err)
	}
	// The fake client keeps StringData as given (an apiserver would move it
	// to Data), so the annotations are read as they are stored.
	sec := &corev1.Secret{}
	if err := tokens.c.Get(ctx, client.ObjectKey{Namespace: "fleetpulse-system", Name: tokenSecretPrefix + tok.ID}, sec); err != nil {
		t.Fatal(err)
	}
	if got := sec.Annotations[annotationUsageCount]; got != strconv.Itoa(registrations) || sec.Annotations[annotationLastUsed] == "" {
		t.Errorf("token used %s times (last %q), want %d", got, sec.Annotations[annotationLastUsed], registrations)
	}
	if w := writes.Load(); w > registrations/4 {
		t.Errorf("%d writes of the token's Secret for %d registrations; want them counted together", w, registrations)
	}
	if n := len(tokens.usage); n != 0 {
		t.Errorf("%d tokens still have counts pending after every registration returned", n)
	}
}
