package gateway_test

import (
	"crypto/x509"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/fleetpulse/fleetpulse/hub/gateway"
	"github.com/fleetpulse/fleetpulse/testbed"
)

// TestReplicaRoutes checks who a Replica route takes, over real mutual TLS
// with the agents' CA and a replication CA: only replicas' certificates,
// only for a cluster this replica owns, and never a replica's certificate
// on an agent's route.
func TestReplicaRoutes(t *testing.T) {
	agents, replicas := testbed.NewCA(t, "agents"), testbed.NewCA(t, "replicas")
	replicaCAs, err := gateway.LoadReplicaCAs(replicas.CertFile)
	if err != nil {
		t.Fatal(err)
	}
	owners := map[string]string{"here": "", "there": "hub-1.example:8443"}
	gw := gateway.New(gateway.Options{ReplicaCAs: replicaCAs, Owner: func(cluster string) (string, error) {
		o, ok := owners[cluster]
		if !ok {
			return "", errors.New("no healthy owner")
		}
		return o, nil
	}})
	whoami := func(w http.ResponseWriter, r *http.Request) {
		id, _ := gateway.IdentityFrom(r.Context())
		_, _ = io.WriteString(w, id.Cluster)
	}
	gw.HandleFunc("POST /replication/v1/write/{cluster}", whoami, gateway.Replica())
	gw.HandleFunc("POST /v1/work", whoami)
	srv := httptest.NewUnstartedServer(gw)
	certFile, keyFile := agents.Server("hub")
	if srv.TLS, err = gateway.TLSConfig(certFile, keyFile, agents.CertFile, replicaCAs...); err != nil {
		t.Fatal(err)
	}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	client := func(ca *testbed.CA, name string) *http.Client {
		cfg := agents.ClientTLS("")
		if ca != nil {
			cfg = ca.ClientTLS(name)
			cfg.RootCAs = agents.Pool()
		}
		return &http.Client{Transport: &http.Transport{TLSClientConfig: cfg},
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	}
	for _, tc := range []struct {
		name   string
		client *http.Client
		path   string
		code   int
		body   string
	}{
		{"a replica, for a cluster it owns", client(replicas, "hub-0"), "/replication/v1/write/here", http.StatusOK, "here"},
		{"a replica, for a cluster another owns", client(replicas, "hub-0"), "/replication/v1/write/there", http.StatusMisdirectedRequest, ""},
		{"a replica, for a cluster without an owner", client(replicas, "hub-0"), "/replication/v1/write/nobody", http.StatusServiceUnavailable, ""},
		{"a replica, for no cluster name", client(replicas, "hub-0"), "/replication/v1/write/No_Name", http.StatusBadRequest, ""},
		{"an agent on the replicas' route", client(agents, "here"), "/replication/v1/write/here", http.StatusForbidden, ""},
		{"no certificate on the replicas' route", client(nil, ""), "/replication/v1/write/here", http.StatusUnauthorized, ""},
		{"a replica on an agent's route", client(replicas, "here"), "/v1/work", http.StatusForbidden, ""},
		{"an agent on its route", client(agents, "here"), "/v1/work", http.StatusOK, "here"},
	} {
		resp, err := tc.client.Post(srv.URL+tc.path, "text/plain", nil)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tc.code || (tc.body != "" && string(body) != tc.body) {
			t.Errorf("%s: %d %q, want %d %q", tc.name, resp.StatusCode, body, tc.code, tc.body)
		}
	}

	// One CA for agents and replicas would make every agent a replica.
	if _, err := gateway.TLSConfig(certFile, keyFile, agents.CertFile, mustLoad(t, agents.CertFile)...); err == nil {
		t.Error("the agents' CA was taken as the replication CA")
	}
}

func mustLoad(t *testing.T, file string) []*x509.Certificate {
	t.Helper()
	cas, err := gateway.LoadReplicaCAs(file)
	if err != nil {
		t.Fatal(err)
	}
	return cas
}
