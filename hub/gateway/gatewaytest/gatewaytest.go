// Package gatewaytest serves a hub/gateway Gateway over real mutual TLS in
// tests, as the hub's agents' port does: a test CA signs the hub's
// certificate and the clusters' client certificates, whose common names
// name the clusters (gateway.CommonName, the gateway's authenticator
// without registration).
package gatewaytest

import (
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"

	"github.com/fleetpulse/fleetpulse/hub/gateway"
	"github.com/fleetpulse/fleetpulse/testbed"
)

// Server is a gateway served on a free loopback port until the test ends.
type Server struct {
	// URL is https://127.0.0.1:<port>.
	URL string
	// CA signs the server's and the clients' certificates.
	CA *testbed.CA

	mu      sync.Mutex
	clients map[string]*http.Client
}

// Start serves gw with the agents' port's TLS (gateway.TLSConfig).
func Start(t testing.TB, gw *gateway.Gateway) *Server {
	t.Helper()
	ca := testbed.NewCA(t, "agents")
	srv := httptest.NewUnstartedServer(gw)
	certFile, keyFile := ca.Server("hub")
	tlsCfg, err := gateway.TLSConfig(certFile, keyFile, ca.CertFile)
	if err != nil {
		t.Fatal(err)
	}
	srv.TLS = tlsCfg
	srv.StartTLS()
	s := &Server{URL: srv.URL, CA: ca, clients: map[string]*http.Client{}}
	t.Cleanup(func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		for _, c := range s.clients {
			c.CloseIdleConnections()
		}
		srv.Close()
	})
	return s
}

// Client is an HTTP client with a client certificate naming cluster, or
// none for "".
func (s *Server) Client(cluster string) *http.Client {
	s.mu.Lock()
	defer s.mu.Unlock()
	if c, ok := s.clients[cluster]; ok {
		return c
	}
	c := &http.Client{Transport: &http.Transport{TLSClientConfig: s.CA.ClientTLS(cluster)}}
	s.clients[cluster] = c
	return c
}
