package fleetsim

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gogo/protobuf/proto"
	"github.com/golang/snappy"

	"github.com/fleetpulse/fleetpulse/api/agentapi"
)

// cluster is one simulated agent.
type cluster struct {
	name, id string
	idx      int
	inv      []series

	// mu serializes the cluster's calls, so that one connection serves
	// them, and orders them against Lose.
	mu          sync.Mutex
	client      *http.Client     // mutual TLS, set once registered
	pair        *tls.Certificate // its certificate, for other connections
	collections int              // guarded by mu
	acked       []int64          // acknowledged writes' timestamps (ms), with RecordWrites; guarded by mu

	period    atomic.Int64 // heartbeat period, ns
	lastBeat  atomic.Int64 // send time of the last acknowledged heartbeat, unix ns
	firstBeat atomic.Int64 // and of the first
	lost      atomic.Bool
	// beat and written are where the last acknowledged heartbeat and
	// write were answered (after redirects) and when.
	beat, written atomic.Pointer[landed]
	// owner is the base URL of the replica that redirected the cluster's
	// last call, where its calls go until that fails.
	owner atomic.Pointer[string]
}

// landed is one acknowledged call: the host that answered it and when.
type landed struct {
	host string
	at   time.Time
}

func (c *cluster) heartbeatPeriod() time.Duration { return time.Duration(c.period.Load()) }

func (c *cluster) setPeriod(seconds int) {
	if seconds > 0 {
		c.period.Store(int64(time.Duration(seconds) * time.Second))
	}
}

func (c *cluster) claims() []agentapi.Claim {
	return []agentapi.Claim{{Name: agentapi.ClaimClusterID, Value: c.id}, {Name: agentapi.ClaimPlatform, Value: clusterPlat}}
}

// statusError is a hub answer other than 2xx.
type statusError struct {
	code       int
	msg        string
	retryAfter time.Duration
}

func (e *statusError) Error() string { return fmt.Sprintf("%d: %s", e.code, e.msg) }

// retryable tells a refusal from a condition the agent waits out, as the
// agent does: transport errors, 429, 5xx and a concurrent registration of
// the same name.
func retryable(err error) bool {
	var se *statusError
	if !errors.As(err, &se) {
		return true
	}
	return se.code == http.StatusTooManyRequests || se.code >= 500 ||
		(se.code == http.StatusConflict && strings.Contains(se.msg, "concurrently"))
}

// register joins the hub: a new key and CSR, then the registration request,
// repeated while the hub has not accepted the cluster or asks to retry.
func (f *Fleet) register(ctx context.Context, c *cluster) error {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return fmt.Errorf("generate key: %w", err)
	}
	csr, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: c.name}}, key)
	if err != nil {
		return fmt.Errorf("create CSR: %w", err)
	}
	body, err := json.Marshal(agentapi.RegisterRequest{
		ClusterName: c.name, CSR: string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: csr})),
		Claims: c.claims(), AgentVersion: f.cfg.AgentVersion,
	})
	if err != nil {
		return err
	}
	backoff := 100 * time.Millisecond
	for {
		var resp agentapi.RegisterResponse
		f.stats.registerRequests.Add(1)
		_, err := f.post(ctx, nil, agentapi.PathRegister, "application/json", f.cfg.Token, body, &resp)
		var wait time.Duration
		switch {
		case err != nil && ctx.Err() != nil:
			return ctx.Err()
		case err != nil && retryable(err):
			f.stats.registerRetries.Add(1)
			f.warn(&f.stats.registerRetries, "registration failed; retrying", "cluster", c.name, "err", err)
			wait = backoff
			var se *statusError
			if errors.As(err, &se) && se.retryAfter > 0 {
				wait = se.retryAfter
			}
			backoff = min(2*backoff, 5*time.Second)
		case err != nil:
			return fmt.Errorf("register %s: %w", c.name, err)
		case !resp.Accepted || resp.Certificate == "":
			f.stats.registerPending.Add(1)
			wait = time.Duration(max(resp.RetryAfterSeconds, 1)) * time.Second
		default:
			keyDER, err := x509.MarshalECPrivateKey(key)
			if err != nil {
				return err
			}
			pair, err := tls.X509KeyPair([]byte(resp.Certificate), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}))
			if err != nil {
				return fmt.Errorf("certificate issued to %s: %w", c.name, err)
			}
			c.mu.Lock()
			// The cluster's heartbeats and writes follow no redirect by
			// themselves: post does, and remembers where they lead.
			client := f.mtlsClient(pair)
			client.CheckRedirect = noRedirects
			c.client, c.pair = client, &pair
			c.mu.Unlock()
			c.setPeriod(resp.HeartbeatPeriodSeconds)
			f.stats.registered.Add(1)
			return nil
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
	}
}

// heartbeat sends one heartbeat; an acknowledged one records its send time.
func (f *Fleet) heartbeat(ctx context.Context, c *cluster) error {
	body, err := json.Marshal(agentapi.HeartbeatRequest{AgentVersion: f.cfg.AgentVersion, Claims: c.claims(), ClusterAPIReachable: true})
	if err != nil {
		return err
	}
	sent := time.Now()
	var resp agentapi.HeartbeatResponse
	host, err := f.post(ctx, c, agentapi.PathHeartbeat, "application/json", "", body, &resp)
	if err != nil {
		return err
	}
	c.beat.Store(&landed{host: host, at: time.Now()})
	f.stats.heartbeatLatency.add(time.Since(sent))
	c.lastBeat.Store(sent.UnixNano())
	c.firstBeat.CompareAndSwap(0, sent.UnixNano())
	c.setPeriod(resp.HeartbeatPeriodSeconds)
	return nil
}

// write remote-writes one collection of the cluster's inventory.
func (f *Fleet) write(ctx context.Context, c *cluster) error {
	ts := time.Now().UnixMilli()
	raw, err := proto.Marshal(writeRequest(c.inv, c.collections, ts))
	if err != nil {
		return err
	}
	c.collections++
	sent := time.Now()
	host, err := f.post(ctx, c, "/api/v1/write", "application/x-protobuf", "", snappy.Encode(nil, raw), nil)
	if err != nil {
		return err
	}
	c.written.Store(&landed{host: host, at: time.Now()})
	f.stats.writeLatency.add(time.Since(sent))
	f.stats.samples.Add(int64(len(c.inv)))
	if f.cfg.RecordWrites {
		c.acked = append(c.acked, ts)
	}
	return nil
}

// maxRedirects bounds the 307s one call follows.
const maxRedirects = 5

// post sends one call to the hub and decodes a JSON answer into out. It
// returns the host that answered. c is the calling cluster, nil for
// registration (f.anon). A replica that does not own c answers 307 with its
// owner's address: the call is repeated there with the same body, and the
// owner is remembered, so that c's later calls go to it directly on one
// kept-alive connection, as a Service's balancer would otherwise send most
// of them to a replica that redirects. A call the owner cannot take (no
// connection: it died) forgets it, so that the next one asks the
// configured address again.
func (f *Fleet) post(ctx context.Context, c *cluster, path, contentType, token string, body []byte, out any) (string, error) {
	client, target, direct := f.anon, f.base, false
	if c != nil {
		client = c.client
		if o := c.owner.Load(); o != nil {
			target, direct = *o, true
		}
	}
	for hops := 0; ; hops++ {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, target+path, bytes.NewReader(body))
		if err != nil {
			return "", err
		}
		req.Header.Set("Content-Type", contentType)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		if contentType == "application/x-protobuf" {
			req.Header.Set("Content-Encoding", "snappy")
			req.Header.Set("X-Prometheus-Remote-Write-Version", "0.1.0")
		}
		// Once a replica has redirected, the configured address is
		// several replicas behind one name: a cluster keeps no connection
		// to it, only the one to its owner.
		req.Close = c != nil && !direct && f.redirected.Load()
		resp, err := client.Do(req)
		if err != nil {
			if c != nil && direct {
				c.owner.Store(nil)
			}
			return "", err
		}
		// Read the whole answer, so that the connection is reused.
		raw, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		resp.Body.Close()
		if err != nil {
			return "", err
		}
		host := resp.Request.URL.Host
		if c != nil && resp.StatusCode == http.StatusTemporaryRedirect && hops < maxRedirects {
			loc, err := resp.Location()
			if err != nil {
				return host, fmt.Errorf("%s answered 307 without a usable Location: %w", host, err)
			}
			if !f.redirected.Swap(true) {
				f.log.Info("a replica redirected: clusters keep a connection to their owner only", "from", host, "to", loc.Host)
			}
			owner := loc.Scheme + "://" + loc.Host
			c.owner.Store(&owner)
			// The connection the 307 came on is idle now: drop it.
			client.CloseIdleConnections()
			target, direct = owner, true
			continue
		}
		if resp.StatusCode/100 != 2 {
			se := &statusError{code: resp.StatusCode, msg: strings.TrimSpace(string(raw))}
			if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil {
				se.retryAfter = time.Duration(s) * time.Second
			}
			return host, se
		}
		if out == nil {
			return host, nil
		}
		if err := json.Unmarshal(raw, out); err != nil {
			return host, fmt.Errorf("decode answer to %s: %w", path, err)
		}
		return host, nil
	}
}

// mtlsClient is a client with a cluster's certificate and one connection
// kept alive between calls to each host.
func (f *Fleet) mtlsClient(pair tls.Certificate) *http.Client {
	return &http.Client{Timeout: f.cfg.RequestTimeout, Transport: &http.Transport{
		DialContext:         f.dialer.DialContext,
		TLSClientConfig:     &tls.Config{RootCAs: f.cfg.RootCAs, Certificates: []tls.Certificate{pair}, MinVersion: tls.VersionTLS12},
		TLSHandshakeTimeout: 10 * time.Second,
		MaxIdleConns:        2,
		MaxIdleConnsPerHost: 1,
		MaxConnsPerHost:     1,
		DisableCompression:  true,
	}}
}

func noRedirects(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
