package hub

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/fleetpulse/fleetpulse/testbed"
)

// TestWebConfigGuardsUsersPort: under a web config file with TLS and basic
// authentication (the file Prometheus takes), the users' port refuses plain
// HTTP and unauthenticated requests, and serves the API to the configured
// user over TLS.
func TestWebConfigGuardsUsersPort(t *testing.T) {
	t.Parallel()
	ca := testbed.NewCA(t, "web")
	certFile, keyFile := ca.Server("hub")
	hash, err := bcrypt.GenerateFromPassword([]byte("s3cret"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	webConfig := filepath.Join(t.TempDir(), "web.yml")
	writeFile(t, webConfig, fmt.Sprintf("tls_server_config:\n  cert_file: %s\n  key_file: %s\nbasic_auth_users:\n  grafana: %s\n", certFile, keyFile, hash))

	cfg := DefaultConfig()
	cfg.HTTPListenAddress, cfg.AgentListenAddress = "127.0.0.1:0", "127.0.0.1:0"
	cfg.AgentTLS.CertFile, cfg.AgentTLS.KeyFile, cfg.AgentTLS.ClientCAFile = certFile, keyFile, ca.CertFile
	cfg.Store.Dir = t.TempDir()
	cfg.Web.ConfigFile = webConfig
	h, _ := runHub(t, cfg)
	base := "https://" + h.Addr().String()
	client := tlsClient(t, ca.CertFile)

	get := func(c *http.Client, url string, user, pass string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, url, nil)
		if user != "" {
			req.SetBasicAuth(user, pass)
		}
		resp, err := c.Do(req)
		if err != nil {
			return 0, err.Error()
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}
	for _, path := range []string{"/api/v1/query?query=up", "/api/v1/read", "/api/v1/events", "/metrics", "/api/v1/series?match[]=up"} {
		if code, body := get(client, base+path, "", ""); code != http.StatusUnauthorized {
			t.Errorf("GET %s without credentials = %d %q, want 401", path, code, body)
		}
		if code, body := get(client, base+path, "grafana", "wrong"); code != http.StatusUnauthorized {
			t.Errorf("GET %s with a wrong password = %d %q, want 401", path, code, body)
		}
	}
	if code, body := get(http.DefaultClient, "http://"+h.Addr().String()+"/api/v1/query?query=vector(1)", "grafana", "s3cret"); code == http.StatusOK {
		t.Errorf("plain HTTP was served under a TLS web config: %d %q", code, body)
	}
	if code, body := get(client, base+"/api/v1/query?query=vector(42)", "grafana", "s3cret"); code != http.StatusOK || !strings.Contains(body, `"42"`) {
		t.Errorf("GET /api/v1/query as the configured user = %d %q, want 200 with 42", code, body)
	}
	// Probes carry no credentials: the agents' port answers them.
	for _, path := range []string{"/-/healthy", "/-/ready"} {
		deadline := time.Now().Add(10 * time.Second)
		code, body := get(client, "https://"+h.AgentAddr().String()+path, "", "")
		for code != http.StatusOK && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
			code, body = get(client, "https://"+h.AgentAddr().String()+path, "", "")
		}
		if code != http.StatusOK {
			t.Errorf("GET %s on the agents' port without a certificate = %d %q, want 200", path, code, body)
		}
	}
	if got := h.externalURL(); !strings.HasPrefix(got, "https://127.0.0.1:") {
		t.Errorf("external URL = %q, want https://127.0.0.1:<port> under a TLS web config", got)
	}
}

// TestWebConfigInvalidStopsStart: a web config that cannot be served is a
// configuration error at start, naming the file, not a failure at the first
// request.
func TestWebConfigInvalidStopsStart(t *testing.T) {
	t.Parallel()
	webConfig := filepath.Join(t.TempDir(), "web.yml")
	writeFile(t, webConfig, "tls_server_config:\n  cert_file: /nonexistent/cert.pem\n  key_file: /nonexistent/key.pem\n")
	cfg := DefaultConfig()
	cfg.Web.ConfigFile = webConfig
	cfg.Store.Dir = t.TempDir()
	if _, err := New(cfg, nil); err == nil || !strings.Contains(err.Error(), webConfig) {
		t.Fatalf("New with a web config naming missing certificates = %v, want an error naming %s", err, webConfig)
	}
}

// TestStateChangingDoorsClosedByDefault: /-/reload and the profiles are off
// unless asked for, as in Prometheus; on, they serve.
func TestStateChangingDoorsClosedByDefault(t *testing.T) {
	t.Parallel()
	for _, open := range []bool{false, true} {
		cfg := DefaultConfig()
		cfg.HTTPListenAddress, cfg.AgentListenAddress = "127.0.0.1:0", ""
		cfg.Store.Dir = t.TempDir()
		cfg.Web.EnableLifecycle, cfg.Web.EnablePprof = open, open
		h, _ := runHub(t, cfg)
		base := "http://" + h.Addr().String()
		resp, err := http.Post(base+"/-/reload", "text/plain", nil)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if want := map[bool]int{false: http.StatusForbidden, true: http.StatusOK}[open]; resp.StatusCode != want {
			t.Errorf("lifecycle %v: POST /-/reload = %s %q, want %d", open, resp.Status, body, want)
		}
		if !open && !strings.Contains(string(body), "--web.enable-lifecycle") {
			t.Errorf("the refusal of /-/reload does not name the flag that opens it: %q", body)
		}
		resp, err = http.Get(base + "/debug/pprof/cmdline")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if want := map[bool]int{false: http.StatusNotFound, true: http.StatusOK}[open]; resp.StatusCode != want {
			t.Errorf("pprof %v: GET /debug/pprof/cmdline = %s, want %d", open, resp.Status, want)
		}
	}
}

// TestGeneratorURLsLeadSomewhere: alerts link to <external URL>/graph,
// which answers: the query API's result without Grafana, Grafana's Explore
// with the expression when configured.
func TestGeneratorURLsLeadSomewhere(t *testing.T) {
	t.Parallel()
	cfg := DefaultConfig()
	cfg.HTTPListenAddress, cfg.AgentListenAddress = "127.0.0.1:0", ""
	cfg.Store.Dir = t.TempDir()
	h, _ := runHub(t, cfg)
	if got, want := h.externalURL(), "http://"+h.Addr().String(); got != want {
		t.Errorf("external URL = %q, want the bound listener %q", got, want)
	}
	resp, err := http.Get(h.externalURL() + "/graph?" + url.Values{"g0.expr": {"vector(7)"}, "g0.tab": {"1"}}.Encode())
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), `"7"`) {
		t.Errorf("GET /graph?g0.expr=vector(7) = %s %q, want the query's answer", resp.Status, body)
	}

	explore := grafanaExplore("https://grafana.example/", "fleet", `up{cluster="a"}`)
	u, err := url.Parse(explore)
	if err != nil {
		t.Fatal(err)
	}
	if u.Path != "/explore" || !strings.Contains(u.Query().Get("panes"), `"expr":"up{cluster=\"a\"}"`) || !strings.Contains(u.Query().Get("panes"), `"uid":"fleet"`) {
		t.Errorf("Grafana Explore URL %s does not open the expression on the datasource", explore)
	}
}

func tlsClient(t *testing.T, caFile string) *http.Client {
	t.Helper()
	pem, err := os.ReadFile(caFile)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(pem)
	return &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots, ServerName: "localhost"}}}
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestEverythingUnderTSDBPath: the hub writes only under
// --storage.tsdb.path (shipped rules, the query log, the shards), so that a
// read-only root file system and one volume are enough.
func TestEverythingUnderTSDBPath(t *testing.T) {
	t.Parallel()
	parent := t.TempDir()
	cfg := DefaultConfig()
	cfg.HTTPListenAddress, cfg.AgentListenAddress = "127.0.0.1:0", ""
	cfg.Store.Dir = filepath.Join(parent, "tsdb")
	_, stop := runHub(t, cfg)
	stop()
	entries, err := os.ReadDir(parent)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if e.Name() != "tsdb" {
			t.Errorf("the hub wrote %s beside its --storage.tsdb.path", e.Name())
		}
	}
	for _, want := range []string{"shipped-rules", "queries.active", "shards"} {
		if _, err := os.Stat(filepath.Join(cfg.Store.Dir, want)); err != nil {
			t.Errorf("%s under the tsdb path: %v", want, err)
		}
	}
}
