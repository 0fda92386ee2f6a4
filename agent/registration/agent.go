package registration

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/fleetpulse/fleetpulse/agent/internal/backoff"
	"github.com/fleetpulse/fleetpulse/agent/internal/health"
	"github.com/fleetpulse/fleetpulse/api/agentapi"
)

// Agent registers the cluster with the hub and keeps it registered. Start
// and Run are called one after the other from one goroutine.
type Agent struct {
	cfg   Config
	paths Paths
	log   *slog.Logger
	stats *Stats
	// health hears heartbeats and renewals failing and succeeding in Run.
	health *health.Health
	now    func() time.Time

	// Retry timing; tests shorten it.
	minBackoff, maxBackoff, pendingPoll time.Duration

	creds  *credentials
	mtls   *gateway // the hub over mutual TLS with creds
	period time.Duration
	claims []agentapi.Claim
	// apiReachable is the cluster API's state at the last heartbeat, nil
	// before the first; hubFailures counts heartbeats failed in a row.
	apiReachable *bool
	hubFailures  int
}

// New checks the configuration and builds an Agent; it starts nothing.
func New(cfg Config) (*Agent, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Cluster == nil {
		return nil, errors.New("registration: Config.Cluster is nil")
	}
	cfg = cfg.withDefaults()
	return &Agent{
		cfg: cfg, paths: PathsIn(cfg.StateDir), stats: cfg.Stats, now: time.Now, health: health.New(cfg.ReportHealth),
		log:        cfg.Logger.With("cluster", cfg.ClusterName),
		minBackoff: time.Second, maxBackoff: time.Minute, pendingPoll: 5 * time.Second,
		period: cfg.HeartbeatPeriod,
	}, nil
}

// Stats returns the agent's counts.
func (a *Agent) Stats() *Stats { return a.stats }

// Paths are the files holding the agent's key, certificate and the hub's CA
// bundle, for the Collector's exporter.
func (a *Agent) Paths() Paths { return a.paths }

// Start makes sure the agent holds credentials the hub takes. With none in
// the state folder, or expired ones, or ones for another cluster name, it
// joins with the bootstrap token, waiting as long as the hub keeps the
// cluster pending. Stored credentials are checked by a first heartbeat: if
// the hub refuses them (401) and a token is at hand, the agent joins again.
// A hub that cannot be reached does not stop Start once credentials are
// held: the Collector can start and queue. Errors are final: a refused
// token, a name taken, a pin mismatch, a deregistered cluster
// (*DeregisteredError, credentials removed), or ctx's end.
func (a *Agent) Start(ctx context.Context) error {
	joined := false
	if reason := a.loadCredentials(); reason != "" {
		if a.cfg.BootstrapToken == "" {
			return fmt.Errorf("%s, and there is no bootstrap token to join the hub with: give --bootstrap-token (or %s)", reason, EnvBootstrapToken)
		}
		a.log.Info("joining the hub", "hub", a.cfg.Hub, "reason", reason)
		if err := a.join(ctx); err != nil {
			return err
		}
		joined = true
	}
	for {
		err := a.heartbeat(ctx)
		switch {
		case err == nil:
			return nil
		case ctx.Err() != nil:
			return ctx.Err()
		}
		if se, ok := deregistration(err); ok {
			return a.deregistered(se)
		}
		if statusCode(err) != http.StatusUnauthorized {
			a.log.Warn("first heartbeat failed; starting anyway and retrying every period", "err", err, "period", a.period)
			return nil
		}
		if joined || a.cfg.BootstrapToken == "" {
			return a.credentialsRefused(err, joined)
		}
		a.log.Warn("the hub refuses the stored credentials; joining again with the bootstrap token", "err", err)
		if err := a.join(ctx); err != nil {
			return err
		}
		joined = true
	}
}

// loadCredentials uses the stored credentials if they are fit, and
// otherwise says why not.
func (a *Agent) loadCredentials() string {
	creds, err := a.paths.load()
	switch {
	case errors.Is(err, errNoCredentials):
		return "no credentials in " + a.paths.Dir
	case err != nil:
		return fmt.Sprintf("the credentials in %s are unusable (%v)", a.paths.Dir, err)
	case creds.cert.Subject.CommonName != a.cfg.ClusterName:
		return fmt.Sprintf("the credentials in %s are for cluster %q", a.paths.Dir, creds.cert.Subject.CommonName)
	case !a.now().Before(creds.cert.NotAfter):
		return fmt.Sprintf("the certificate in %s expired at %s", a.paths.Dir, creds.cert.NotAfter.UTC().Format(time.RFC3339))
	}
	a.use(creds)
	a.log.Info("using the stored credentials", "dir", a.paths.Dir, "not_after", creds.cert.NotAfter.UTC())
	return ""
}

// Run heartbeats every period and renews the certificate at 80 % of its
// lifetime until ctx ends (nil) or the hub ends the registration. Hub
// outages are logged and retried, never fatal. It returns a
// *DeregisteredError (credentials removed) on 403; an error wrapping
// ErrCredentialsRefused when the hub refuses the certificate (401): the
// agent exits, and at restart joins again if it has a token; or the error of
// a join that was needed because the certificate expired unrenewed.
func (a *Agent) Run(ctx context.Context) error {
	if a.creds == nil {
		return errors.New("registration: Run before a successful Start")
	}
	beat := time.NewTimer(a.period)
	defer beat.Stop()
	renew := time.NewTimer(a.untilRenewal())
	defer renew.Stop()
	retry := a.newBackoff()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-beat.C:
			if joined, err := a.rejoinIfExpired(ctx); err != nil {
				return a.endOf(ctx, err)
			} else if joined {
				renew.Reset(a.untilRenewal())
			}
			err := a.heartbeat(ctx)
			if err != nil {
				if err := a.fatal(err); err != nil {
					return a.endOf(ctx, err)
				}
				if ctx.Err() == nil {
					a.log.Warn("heartbeat failed; retrying next period", "err", err, "failures_in_a_row", a.hubFailures, "period", a.period)
					a.health.Set("heartbeat", fmt.Errorf("heartbeats fail (%d in a row): %w", a.hubFailures, err))
				}
			} else {
				a.health.Set("heartbeat", nil)
			}
			beat.Reset(a.period)
		case <-renew.C:
			err := a.renew(ctx)
			if err == nil {
				a.health.Set("renewal", nil)
				retry.Reset()
				renew.Reset(a.untilRenewal())
				continue
			}
			if err := a.fatal(err); err != nil {
				return a.endOf(ctx, err)
			}
			if ctx.Err() == nil {
				a.health.Set("renewal", fmt.Errorf("certificate renewal fails: %w", err))
			}
			wait := retry.Next(retryAfter(err))
			a.log.Warn("certificate renewal failed; retrying", "err", err, "retry_in", wait.Round(time.Millisecond),
				"not_after", a.creds.cert.NotAfter.UTC())
			renew.Reset(wait)
		}
	}
}

// endOf returns nil for ctx's end, err otherwise.
func (a *Agent) endOf(ctx context.Context, err error) error {
	if ctx.Err() != nil && errors.Is(err, ctx.Err()) {
		return nil
	}
	return err
}

// fatal sorts a failed heartbeat or renewal: nil when it is worth retrying
// next time, the error that ends the agent otherwise.
func (a *Agent) fatal(err error) error {
	if se, ok := deregistration(err); ok {
		return a.deregistered(se)
	}
	if statusCode(err) == http.StatusUnauthorized {
		return a.credentialsRefused(err, false)
	}
	return nil
}

// rejoinIfExpired joins again when the certificate expired unrenewed (the
// hub was unreachable for the last fifth of its lifetime).
func (a *Agent) rejoinIfExpired(ctx context.Context) (bool, error) {
	if a.now().Before(a.creds.cert.NotAfter) {
		return false, nil
	}
	expired := a.creds.cert.NotAfter.UTC().Format(time.RFC3339)
	if a.cfg.BootstrapToken == "" {
		return false, fmt.Errorf("the client certificate expired at %s unrenewed, and there is no bootstrap token to join again with: give --bootstrap-token (or %s)", expired, EnvBootstrapToken)
	}
	a.log.Warn("the client certificate expired unrenewed; joining again with the bootstrap token", "not_after", expired)
	return true, a.join(ctx)
}

func (a *Agent) credentialsRefused(err error, justIssued bool) error {
	msg := err.Error()
	if se := (*StatusError)(nil); errors.As(err, &se) {
		msg = se.Message
	}
	switch {
	case justIssued:
		return fmt.Errorf("%w (401) right after issuing it: %s", ErrCredentialsRefused, msg)
	case a.cfg.BootstrapToken == "":
		return fmt.Errorf("%w (401): %s; give --bootstrap-token (or %s) to join again", ErrCredentialsRefused, msg, EnvBootstrapToken)
	default:
		return fmt.Errorf("%w (401): %s; the agent joins again with its bootstrap token when it restarts", ErrCredentialsRefused, msg)
	}
}

// deregistered removes the credentials and says so.
func (a *Agent) deregistered(se *StatusError) error {
	err := &DeregisteredError{Cluster: a.cfg.ClusterName, Message: se.Message}
	a.log.Error(err.Error(), "status", se.Code)
	if rmErr := a.paths.remove(); rmErr != nil {
		a.log.Error("could not remove the credentials", "dir", a.paths.Dir, "err", rmErr)
	} else {
		a.log.Info("removed the credentials", "dir", a.paths.Dir)
	}
	a.use(nil)
	return err
}

// use makes creds the agent's credentials for calls over mutual TLS.
func (a *Agent) use(creds *credentials) {
	old := a.mtls
	a.creds, a.mtls = creds, nil
	if creds != nil {
		a.mtls = &gateway{base: a.base(), client: newHTTPClient(creds.roots, &creds.tlsCert, false)}
		a.stats.expiry.Store(creds.cert.NotAfter.Unix())
	}
	// Idle connections still present the previous certificate.
	old.close()
}

func (a *Agent) base() string { return strings.TrimSuffix(a.cfg.Hub, "/") }

// untilRenewal is the time left until 80 % of the certificate's lifetime.
func (a *Agent) untilRenewal() time.Duration {
	c := a.creds.cert
	at := c.NotBefore.Add(c.NotAfter.Sub(c.NotBefore) * 4 / 5)
	return max(at.Sub(a.now()), 0)
}

// heartbeat sends one heartbeat with the cluster API's health.
func (a *Agent) heartbeat(ctx context.Context) error {
	req := agentapi.HeartbeatRequest{AgentVersion: a.cfg.AgentVersion, ClusterAPIReachable: true}
	hctx, cancel := context.WithTimeout(ctx, min(5*time.Second, a.period/2))
	if err := a.cfg.Cluster.Healthy(hctx); err != nil {
		req.ClusterAPIReachable, req.ClusterAPIError = false, truncate(err.Error(), 512)
	} else if a.claims == nil {
		if claims, err := a.cfg.Cluster.Claims(hctx); err == nil {
			a.claims = claims
		}
	}
	cancel()
	a.noteClusterAPI(req)
	req.Claims = a.claims

	var resp agentapi.HeartbeatResponse
	err := a.mtls.post(ctx, "heartbeat", agentapi.PathHeartbeat, "", req, &resp)
	switch _, dereg := deregistration(err); {
	case err == nil:
		a.stats.heartbeats.inc(ResultOK)
	case dereg:
		a.stats.heartbeats.inc(ResultDeregistered)
	case statusCode(err) == http.StatusUnauthorized:
		a.stats.heartbeats.inc(ResultUnauthorized)
	default:
		a.stats.heartbeats.inc(ResultError)
	}
	if err != nil {
		a.hubFailures++
		return err
	}
	if a.hubFailures > 0 {
		a.log.Info("heartbeats reach the hub again", "failures_in_a_row", a.hubFailures)
		a.hubFailures = 0
	}
	a.setPeriod(resp.HeartbeatPeriodSeconds)
	return nil
}

// noteClusterAPI logs the cluster API's reachability when it changes.
func (a *Agent) noteClusterAPI(req agentapi.HeartbeatRequest) {
	if a.apiReachable != nil && *a.apiReachable == req.ClusterAPIReachable {
		return
	}
	if req.ClusterAPIReachable {
		if a.apiReachable != nil {
			a.log.Info("the cluster's apiserver is reachable again")
		}
	} else {
		a.log.Warn("the cluster's apiserver is unreachable; telling the hub", "err", req.ClusterAPIError)
	}
	r := req.ClusterAPIReachable
	a.apiReachable = &r
}

func (a *Agent) setPeriod(seconds int) {
	if seconds <= 0 {
		return
	}
	if p := time.Duration(seconds) * time.Second; p != a.period {
		a.log.Info("heartbeat period set by the hub", "period", p)
		a.period = p
	}
}

// renew asks for a certificate for a new key and replaces the stored
// credentials with it.
func (a *Agent) renew(ctx context.Context) error {
	k, err := newKeyAndCSR(a.cfg.ClusterName)
	if err != nil {
		return err
	}
	var resp agentapi.RenewResponse
	err = a.mtls.post(ctx, "renew", agentapi.PathRenew, "", agentapi.RenewRequest{CSR: k.csrPEM}, &resp)
	if err == nil {
		var creds *credentials
		var ca []byte
		if creds, ca, err = k.issued(resp.Certificate, resp.CABundle, a.creds.caPEM); err == nil {
			if err = a.paths.save(k.keyPEM, []byte(resp.Certificate), ca); err == nil {
				a.use(creds)
				a.stats.renewals.inc(ResultOK)
				a.log.Info("renewed the client certificate", "dir", a.paths.Dir, "not_after", creds.cert.NotAfter.UTC())
				return nil
			}
		}
	}
	switch _, dereg := deregistration(err); {
	case dereg:
		a.stats.renewals.inc(ResultDeregistered)
	case statusCode(err) == http.StatusUnauthorized:
		a.stats.renewals.inc(ResultUnauthorized)
	default:
		a.stats.renewals.inc(ResultError)
	}
	return err
}

// join registers the cluster with the bootstrap token and stores the
// credentials the hub issues once it accepts the cluster.
func (a *Agent) join(ctx context.Context) error {
	caPEM, roots, err := a.hubRoots(ctx)
	if err != nil {
		return err
	}
	claims, err := a.clusterClaims(ctx)
	if err != nil {
		return err
	}
	k, origin, err := a.joinKey()
	if err != nil {
		return err
	}
	a.log.Info("registering with "+origin, "key_sha256", k.hash)
	pool := x509.NewCertPool()
	for _, c := range roots {
		pool.AddCert(c)
	}
	g := &gateway{base: a.base(), client: newHTTPClient(pool, nil, false), secret: a.cfg.BootstrapToken}
	defer g.close()
	req := agentapi.RegisterRequest{ClusterName: a.cfg.ClusterName, CSR: k.csrPEM, Claims: claims, AgentVersion: a.cfg.AgentVersion}
	bo := a.newBackoff()
	waiting, told := false, ""
	for {
		var resp agentapi.RegisterResponse
		err := g.post(ctx, "register", agentapi.PathRegister, a.cfg.BootstrapToken, req, &resp)
		var wait time.Duration
		switch {
		case err != nil && retryable(ctx, err):
			a.stats.registrations.inc(ResultError)
			wait = bo.Next(retryAfter(err))
			a.log.Warn("registration failed; retrying", "err", err, "retry_in", wait.Round(time.Millisecond))
		case err != nil:
			if ctx.Err() != nil {
				return ctx.Err()
			}
			a.stats.registrations.inc(ResultRefused)
			return a.registrationRefused(err)
		case !resp.Accepted:
			a.stats.registrations.inc(ResultPending)
			bo.Reset()
			// The key's hash is what an administrator compares before
			// accepting the cluster, or approving its key when the cluster
			// is registered with another one (the hub's message says which).
			if !waiting || resp.Message != told {
				a.log.Info("waiting for the hub to accept cluster "+a.cfg.ClusterName, "message", resp.Message, "key_sha256", k.hash)
				waiting, told = true, resp.Message
			}
			wait = time.Duration(resp.RetryAfterSeconds) * time.Second
			if wait <= 0 {
				wait = a.pendingPoll
			}
		default:
			creds, ca, err := k.issued(resp.Certificate, resp.CABundle, caPEM)
			if err != nil {
				a.stats.registrations.inc(ResultRefused)
				return fmt.Errorf("join the hub as cluster %s: %w", a.cfg.ClusterName, err)
			}
			if err := a.paths.save(k.keyPEM, []byte(resp.Certificate), ca); err != nil {
				return fmt.Errorf("store the credentials the hub issued: %w", err)
			}
			if err := a.paths.removeJoinKey(); err != nil {
				a.log.Warn("could not remove the key of the finished join", "err", err)
			}
			a.stats.registrations.inc(ResultAccepted)
			a.use(creds)
			a.setPeriod(resp.HeartbeatPeriodSeconds)
			a.log.Info("joined the hub", "hub", a.cfg.Hub, "dir", a.paths.Dir, "not_after", creds.cert.NotAfter.UTC())
			return nil
		}
		if err := backoff.Sleep(ctx, wait); err != nil {
			return err
		}
	}
}

func (a *Agent) registrationRefused(err error) error {
	var se *StatusError
	if !errors.As(err, &se) {
		return fmt.Errorf("join the hub as cluster %s: %w", a.cfg.ClusterName, err)
	}
	switch se.Code {
	case http.StatusUnauthorized:
		return fmt.Errorf("join the hub as cluster %s: %w (401): %s; create a new token on the hub", a.cfg.ClusterName, ErrTokenRefused, se.Message)
	case http.StatusConflict:
		return fmt.Errorf("join the hub as cluster %s: %w (409): %s", a.cfg.ClusterName, ErrNameTaken, se.Message)
	case http.StatusForbidden:
		return a.deregistered(se)
	}
	return fmt.Errorf("join the hub as cluster %s: %w", a.cfg.ClusterName, err)
}

// joinKey returns the key to join with and where it comes from: the key of
// the stored credentials, which the hub knows the cluster by (their
// certificate expired unrenewed, or the hub refuses it); else the key of a
// join that was waiting when the agent stopped; else a new key, stored
// before the hub sees it. The hub issues a certificate for a registered
// cluster only for the key it registered with, or one an administrator
// approved, so the agent keeps its key while it waits and across restarts.
func (a *Agent) joinKey() (*keyAndCSR, string, error) {
	for _, src := range []struct{ path, origin string }{
		{a.paths.Key, "the key of the stored credentials"},
		{a.paths.joinKey(), "the key of the unfinished join"},
	} {
		keyPEM, err := os.ReadFile(src.path)
		if err != nil {
			continue
		}
		key, err := parseECKey(keyPEM)
		if err != nil {
			a.log.Warn("ignoring an unreadable key", "path", src.path, "err", err)
			continue
		}
		k, err := csrFor(key, a.cfg.ClusterName)
		if err != nil {
			return nil, "", err
		}
		return k, src.origin, nil
	}
	k, err := newKeyAndCSR(a.cfg.ClusterName)
	if err != nil {
		return nil, "", err
	}
	if err := a.paths.saveJoinKey(k.keyPEM); err != nil {
		return nil, "", fmt.Errorf("store the key to join with: %w", err)
	}
	return k, "a new key", nil
}

// hubRoots returns the CA certificates that verify the hub when joining:
// those of --hub-ca-file, or the hub's own CA checked against the pin.
func (a *Agent) hubRoots(ctx context.Context) ([]byte, []*x509.Certificate, error) {
	if a.cfg.CAFile != "" {
		return readCAFile(a.cfg.CAFile, a.cfg.CAHash)
	}
	g := &gateway{base: a.base(), client: newHTTPClient(nil, nil, true)}
	defer g.close()
	bo := a.newBackoff()
	for {
		bundle, peer, err := g.fetchCA(ctx)
		if err != nil {
			if !retryable(ctx, err) {
				if ctx.Err() != nil {
					return nil, nil, ctx.Err()
				}
				return nil, nil, fmt.Errorf("join the hub: %w", err)
			}
			wait := bo.Next(retryAfter(err))
			a.log.Warn("fetching the hub's CA failed; retrying", "err", err, "retry_in", wait.Round(time.Millisecond))
			if err := backoff.Sleep(ctx, wait); err != nil {
				return nil, nil, err
			}
			continue
		}
		roots, err := pinnedRoots(bundle, a.cfg.CAHash)
		if err != nil {
			return nil, nil, fmt.Errorf("join the hub at %s: %w", a.cfg.Hub, err)
		}
		if err := verifyServer(a.cfg.Hub, peer, roots); err != nil {
			return nil, nil, fmt.Errorf("join the hub at %s: %w: refusing to send the bootstrap token", a.cfg.Hub, err)
		}
		return encodeCerts(roots), roots, nil
	}
}

// clusterClaims reads the cluster's claims, retrying while its apiserver
// cannot answer.
func (a *Agent) clusterClaims(ctx context.Context) ([]agentapi.Claim, error) {
	bo := a.newBackoff()
	for {
		claims, err := a.cfg.Cluster.Claims(ctx)
		if err == nil {
			a.claims = claims
			return claims, nil
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		var perm *PermanentError
		if errors.As(err, &perm) {
			return nil, fmt.Errorf("join the hub: %w", err)
		}
		wait := bo.Next(0)
		a.log.Warn("reading the cluster's identity failed; retrying", "err", err, "retry_in", wait.Round(time.Millisecond))
		if err := backoff.Sleep(ctx, wait); err != nil {
			return nil, err
		}
	}
}

func retryAfter(err error) time.Duration {
	var se *StatusError
	if errors.As(err, &se) {
		return se.RetryAfter
	}
	return 0
}

func (a *Agent) newBackoff() *backoff.Backoff {
	return &backoff.Backoff{Min: a.minBackoff, Max: a.maxBackoff}
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}
