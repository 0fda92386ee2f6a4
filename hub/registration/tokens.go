package registration

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// Bootstrap tokens are Secrets of this type in the hub's namespace, one per
// token, named bootstrap-token-<id>. Only the secret half's SHA-256 is
// stored: the token itself is shown once, when it is created.
const (
	TokenSecretType       = corev1.SecretType("fleetpulse.io/bootstrap-token")
	tokenSecretPrefix     = "bootstrap-token-"
	keyTokenID            = "token-id"
	keySecretSHA256       = "token-secret-sha256"
	keyExpiration         = "expiration"
	keyAutoAccept         = "auto-accept"
	keyClusterSet         = "cluster-set"
	annotationUsageCount  = "fleetpulse.io/usage-count"
	annotationLastUsed    = "fleetpulse.io/last-used"
	annotationRevokedAt   = "fleetpulse.io/revoked-at"
	annotationDescription = "fleetpulse.io/description"
)

var tokenFormat = regexp.MustCompile(`^([a-z0-9]{6})\.([a-z0-9]{16})$`)

// Token is a bootstrap token as stored (without its secret).
type Token struct {
	ID          string
	Expiration  time.Time
	AutoAccept  bool
	ClusterSet  string
	UsageCount  int
	LastUsed    time.Time
	RevokedAt   time.Time
	Description string
}

// TokenOptions are a new token's properties.
type TokenOptions struct {
	TTL         time.Duration
	AutoAccept  bool
	ClusterSet  string
	Description string
}

// Tokens stores bootstrap tokens in a namespace of the hub's control plane.
type Tokens struct {
	c         client.Client
	namespace string
	now       func() time.Time

	mu    sync.Mutex
	usage map[string]*tokenUsage // by token id: registrations not yet counted in the Secret
}

// NewTokens returns the token store over c (which should read uncached:
// tokens are read rarely and must be current).
func NewTokens(c client.Client, namespace string) *Tokens {
	return &Tokens{c: c, namespace: namespace, now: time.Now, usage: map[string]*tokenUsage{}}
}

// Create stores a new token and returns it in full ("<id>.<secret>").
func (t *Tokens) Create(ctx context.Context, o TokenOptions) (string, Token, error) {
	if o.TTL <= 0 {
		return "", Token{}, fmt.Errorf("token ttl must be positive, got %s", o.TTL)
	}
	id, secret := randomString(6), randomString(16)
	sum := sha256.Sum256([]byte(secret))
	tok := Token{ID: id, Expiration: t.now().Add(o.TTL).UTC().Truncate(time.Second), AutoAccept: o.AutoAccept, ClusterSet: o.ClusterSet, Description: o.Description}
	s := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{
			Name: tokenSecretPrefix + id, Namespace: t.namespace,
			Annotations: map[string]string{annotationUsageCount: "0", annotationDescription: o.Description},
		},
		Type: TokenSecretType,
		StringData: map[string]string{
			keyTokenID: id, keySecretSHA256: hex.EncodeToString(sum[:]),
			keyExpiration: tok.Expiration.Format(time.RFC3339), keyAutoAccept: strconv.FormatBool(o.AutoAccept), keyClusterSet: o.ClusterSet,
		},
	}
	if err := t.c.Create(ctx, s); err != nil {
		return "", Token{}, fmt.Errorf("store bootstrap token: %w", err)
	}
	return id + "." + secret, tok, nil
}

// ErrToken is wrapped by every refusal of a presented token.
var ErrToken = errors.New("bootstrap token refused")

// Check validates a presented token and returns it. The error says whether
// it was malformed, unknown, revoked or expired, never the secret.
func (t *Tokens) Check(ctx context.Context, presented string) (Token, error) {
	m := tokenFormat.FindStringSubmatch(presented)
	if m == nil {
		return Token{}, fmt.Errorf("%w: not of the form <6 characters>.<16 characters>", ErrToken)
	}
	s := &corev1.Secret{}
	err := t.c.Get(ctx, client.ObjectKey{Namespace: t.namespace, Name: tokenSecretPrefix + m[1]}, s)
	if apierrors.IsNotFound(err) {
		return Token{}, fmt.Errorf("%w: token %s does not exist (deleted or never created)", ErrToken, m[1])
	}
	if err != nil {
		return Token{}, fmt.Errorf("look up bootstrap token %s: %w", m[1], err)
	}
	tok, err := tokenFromSecret(s)
	if err != nil {
		return Token{}, err
	}
	sum := sha256.Sum256([]byte(m[2]))
	if subtle.ConstantTimeCompare([]byte(hex.EncodeToString(sum[:])), s.Data[keySecretSHA256]) != 1 {
		return Token{}, fmt.Errorf("%w: token %s: wrong secret", ErrToken, m[1])
	}
	if !tok.RevokedAt.IsZero() {
		return Token{}, fmt.Errorf("%w: token %s was revoked at %s", ErrToken, tok.ID, tok.RevokedAt.Format(time.RFC3339))
	}
	if !t.now().Before(tok.Expiration) {
		return Token{}, fmt.Errorf("%w: token %s expired at %s", ErrToken, tok.ID, tok.Expiration.Format(time.RFC3339))
	}
	return tok, nil
}

// tokenUsage is one token's counting: the write of its Secret in flight,
// and the registrations waiting for the next one.
type tokenUsage struct {
	writing chan struct{} // closed when the write in flight ends; nil when none is
	next    *usageBatch
}

// usageBatch is registrations counted together in one write.
type usageBatch struct {
	n    int
	last time.Time
	done chan struct{} // closed once written; err is then set
	err  error
}

// Used counts one registration made with the token, and returns once the
// count is in the token's Secret. Registrations that arrive while a count
// is being written are added up and written together by one of them when
// that write ends (group commit), so that a burst of registrations with one
// token costs a few writes of its Secret rather than one each, all
// conflicting. A caller that gives up (ctx) leaves its count to the next.
func (t *Tokens) Used(ctx context.Context, id string) error {
	t.mu.Lock()
	u := t.usage[id]
	if u == nil {
		u = &tokenUsage{}
		t.usage[id] = u
	}
	if u.next == nil {
		u.next = &usageBatch{done: make(chan struct{})}
	}
	b := u.next
	b.n++
	b.last = t.now()
	for u.writing != nil { // wait for the write in flight: it may end ours, or make us write
		w := u.writing
		t.mu.Unlock()
		select {
		case <-b.done:
			return b.err
		case <-ctx.Done():
			return ctx.Err()
		case <-w:
		}
		t.mu.Lock()
	}
	if u.next != b { // another registration of the batch wrote it
		t.mu.Unlock()
		<-b.done
		return b.err
	}
	u.next, u.writing = nil, make(chan struct{})
	w := u.writing
	t.mu.Unlock()

	b.err = t.addUsage(ctx, id, b.n, b.last)
	close(b.done)
	t.mu.Lock()
	u.writing = nil
	if u.next == nil {
		delete(t.usage, id)
	}
	t.mu.Unlock()
	close(w)
	return b.err
}

// usageBackoff spaces the retries of a usage count that lost its write to
// another's: every replica counts the registrations it takes, so with a
// fleet joining at once, client-go's DefaultRetry (five tries within about
// 50 ms) runs out while the other replicas keep writing.
var usageBackoff = wait.Backoff{Steps: 10, Duration: 10 * time.Millisecond, Factor: 2, Jitter: 1, Cap: 2 * time.Second}

// addUsage adds n registrations, the last at last, to the token's Secret.
func (t *Tokens) addUsage(ctx context.Context, id string, n int, last time.Time) error {
	return retry.RetryOnConflict(usageBackoff, func() error {
		s := &corev1.Secret{}
		if err := t.c.Get(ctx, client.ObjectKey{Namespace: t.namespace, Name: tokenSecretPrefix + id}, s); err != nil {
			return err
		}
		count, _ := strconv.Atoi(s.Annotations[annotationUsageCount])
		if s.Annotations == nil {
			s.Annotations = map[string]string{}
		}
		s.Annotations[annotationUsageCount] = strconv.Itoa(count + n)
		s.Annotations[annotationLastUsed] = last.UTC().Format(time.RFC3339)
		return t.c.Update(ctx, s)
	})
}

// Revoke refuses the token from now on; it stays listed as revoked.
func (t *Tokens) Revoke(ctx context.Context, id string) error {
	return retry.RetryOnConflict(retry.DefaultRetry, func() error {
		s := &corev1.Secret{}
		if err := t.c.Get(ctx, client.ObjectKey{Namespace: t.namespace, Name: tokenSecretPrefix + id}, s); err != nil {
			if apierrors.IsNotFound(err) {
				return fmt.Errorf("token %s does not exist", id)
			}
			return err
		}
		if s.Annotations == nil {
			s.Annotations = map[string]string{}
		}
		if s.Annotations[annotationRevokedAt] == "" {
			s.Annotations[annotationRevokedAt] = t.now().UTC().Format(time.RFC3339)
		}
		return t.c.Update(ctx, s)
	})
}

// List returns every token, revoked and expired ones included.
func (t *Tokens) List(ctx context.Context) ([]Token, error) {
	var list corev1.SecretList
	if err := t.c.List(ctx, &list, client.InNamespace(t.namespace)); err != nil {
		return nil, fmt.Errorf("list bootstrap tokens: %w", err)
	}
	var out []Token
	for i := range list.Items {
		if list.Items[i].Type != TokenSecretType {
			continue
		}
		tok, err := tokenFromSecret(&list.Items[i])
		if err != nil {
			return nil, err
		}
		out = append(out, tok)
	}
	return out, nil
}

func tokenFromSecret(s *corev1.Secret) (Token, error) {
	if s.Type != TokenSecretType {
		return Token{}, fmt.Errorf("secret %s is not a bootstrap token", s.Name)
	}
	exp, err := time.Parse(time.RFC3339, string(s.Data[keyExpiration]))
	if err != nil {
		return Token{}, fmt.Errorf("bootstrap token %s: expiration: %w", s.Name, err)
	}
	tok := Token{
		ID: string(s.Data[keyTokenID]), Expiration: exp, AutoAccept: string(s.Data[keyAutoAccept]) == "true",
		ClusterSet: string(s.Data[keyClusterSet]), Description: s.Annotations[annotationDescription],
	}
	tok.UsageCount, _ = strconv.Atoi(s.Annotations[annotationUsageCount])
	tok.LastUsed, _ = time.Parse(time.RFC3339, s.Annotations[annotationLastUsed])
	tok.RevokedAt, _ = time.Parse(time.RFC3339, s.Annotations[annotationRevokedAt])
	return tok, nil
}

const tokenAlphabet = "abcdefghijklmnopqrstuvwxyz0123456789"

// randomString draws n characters of tokenAlphabet uniformly: bytes of 252
// and above are rejected, since 252 is the largest multiple of 36 under 256.
func randomString(n int) string {
	out := make([]byte, 0, n)
	buf := make([]byte, 1)
	for len(out) < n {
		_, _ = rand.Read(buf) // crypto/rand.Read never fails on Linux
		if buf[0] < 252 {
			out = append(out, tokenAlphabet[int(buf[0])%len(tokenAlphabet)])
		}
	}
	return string(out)
}
