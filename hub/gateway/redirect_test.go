package gateway_test

import (
	"errors"
	"io"
	"net/http"
	"testing"

	"github.com/fleetpulse/fleetpulse/hub/gateway"
	"github.com/fleetpulse/fleetpulse/hub/gateway/gatewaytest"
)

// TestRedirectToOwner checks that an authenticated caller whose cluster
// another replica owns is sent there with a 307 keeping the path and
// query, one whose cluster has no owner now is told to retry, and routes
// that answer strangers are served wherever they are reached.
func TestRedirectToOwner(t *testing.T) {
	owners := map[string]string{"here": "", "there": "hub-1.example:8443"}
	gw := gateway.New(gateway.Options{Owner: func(cluster string) (string, error) {
		o, ok := owners[cluster]
		if !ok {
			return "", errors.New("no healthy owner")
		}
		return o, nil
	}})
	gw.HandleFunc("POST /v1/work", func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "served") })
	gw.HandleFunc("GET /ca", func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "served") }, gateway.Unauthenticated())
	srv := gatewaytest.Start(t, gw)
	noFollow := func(cluster string) *http.Client {
		c := *srv.Client(cluster)
		c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
		return &c
	}
	for _, tc := range []struct {
		cluster, method, path string
		code                  int
		location              string
	}{
		{"here", http.MethodPost, "/v1/work?wait=30s", http.StatusOK, ""},
		{"there", http.MethodPost, "/v1/work?wait=30s", http.StatusTemporaryRedirect, "https://hub-1.example:8443/v1/work?wait=30s"},
		{"nobody", http.MethodPost, "/v1/work", http.StatusServiceUnavailable, ""},
		{"there", http.MethodGet, "/ca", http.StatusOK, ""},
		{"", http.MethodGet, "/ca", http.StatusOK, ""},
	} {
		req, _ := http.NewRequest(tc.method, srv.URL+tc.path, nil)
		resp, err := noFollow(tc.cluster).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tc.code || resp.Header.Get("Location") != tc.location {
			t.Errorf("%s %s as %q: %d to %q, want %d to %q", tc.method, tc.path, tc.cluster, resp.StatusCode, resp.Header.Get("Location"), tc.code, tc.location)
		}
	}
}
