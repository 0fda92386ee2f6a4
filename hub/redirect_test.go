package hub

import (
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/golang/snappy"
	"github.com/prometheus/prometheus/prompb"

	"github.com/fleetpulse/fleetpulse/internal/ownerroute"
	"github.com/fleetpulse/fleetpulse/testbed"
)

// agentClient is an agent's HTTP client: its cluster's certificate, the
// hub's CA, and Go's redirect policy, which repeats a 307's method and
// body at the new address (as the agent's and the collector's clients do).
func agentClient(t *testing.T, ca *testbed.CA, cluster string) *http.Client {
	t.Helper()
	certFile, keyFile := ca.Client(cluster)
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{
		Certificates: []tls.Certificate{cert}, RootCAs: ca.Pool(), ServerName: "localhost"}}}
}

// remoteWrite sends one sample of probe for a cluster to the hub at addr
// and returns the agents' address that answered it, after redirects.
func remoteWrite(c *http.Client, addr string, ts time.Time) (string, error) {
	wr := prompb.WriteRequest{Timeseries: []prompb.TimeSeries{{
		Labels:  []prompb.Label{{Name: "__name__", Value: "redirect_probe"}},
		Samples: []prompb.Sample{{Value: 1, Timestamp: ts.UnixMilli()}},
	}}}
	raw, err := wr.Marshal()
	if err != nil {
		return "", err
	}
	req, _ := http.NewRequestWithContext(context.Background(), http.MethodPost, "https://"+addr+"/api/v1/write", bytes.NewReader(snappy.Encode(nil, raw)))
	req.Header.Set("Content-Type", "application/x-protobuf")
	req.Header.Set("Content-Encoding", "snappy")
	req.Header.Set("X-Prometheus-Remote-Write-Version", "0.1.0")
	resp, err := c.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return "", fmt.Errorf("remote write to %s: %s", addr, resp.Status)
	}
	return resp.Request.URL.Host, nil
}

// TestAgentsLandAtTheirClustersOwner runs three hubs in a ring: an agent
// that writes to a replica that does not own its cluster is redirected to
// the owner, whose store alone holds the samples; once the owner stops,
// the same agent lands at the cluster's new owner. It measures a write
// through a redirect against one written to the owner directly.
func TestAgentsLandAtTheirClustersOwner(t *testing.T) {
	ca := testbed.NewCA(t, "agents")
	replicas, stops := ringReplicas(t, ca, 3)
	clusters := []string{"c-0", "c-1", "c-2", "c-3", "c-4", "c-5"}
	now := time.Now().Truncate(time.Second)
	for _, c := range clusters {
		owner := ownerOf(t, replicas, c)
		for _, h := range replicas {
			landed, err := remoteWrite(agentClient(t, ca, c), h.AgentAddr().String(), now)
			if err != nil {
				t.Fatalf("%s through %s: %v", c, h.Ring().Self().ID, err)
			}
			if landed != owner.AgentAddr().String() {
				t.Fatalf("%s written to %s landed at %s, not at its owner %s", c, h.Ring().Self().ID, landed, owner.AgentAddr())
			}
		}
	}
	for _, h := range replicas {
		got := ownSeries(t, h, "redirect_probe")
		for _, c := range clusters {
			has := slices.ContainsFunc(got, func(s string) bool { return bytes.Contains([]byte(s), []byte(`cluster="`+c+`"`)) })
			if owns := h.Ring().Owns(c); has != owns {
				t.Errorf("%s holds %s: %v, owns it: %v", h.Ring().Self().ID, c, has, owns)
			}
		}
	}

	// A write through a redirect costs a second request; the agent's
	// connections to both replicas stay open.
	c := clusters[0]
	owner := ownerOf(t, replicas, c)
	other := replicas[(slices.Index(replicas, owner)+1)%len(replicas)]
	const writes = 200
	ts := now
	for _, run := range []struct {
		how    string
		via    *Hub
		client *http.Client
	}{
		{"to the owner", owner, agentClient(t, ca, c)},
		{"redirected each time", other, agentClient(t, ca, c)},
		// The agent's clients remember the owner a 307 named.
		{"as the agent sends them", other, ownerroute.Client(agentClient(t, ca, c))},
	} {
		start := time.Now()
		for range writes {
			ts = ts.Add(time.Millisecond)
			landed, err := remoteWrite(run.client, run.via.AgentAddr().String(), ts)
			if err != nil {
				t.Fatal(err)
			}
			if landed != owner.AgentAddr().String() {
				t.Fatalf("a write of %s %s landed at %s, not at its owner %s", c, run.how, landed, owner.AgentAddr())
			}
		}
		t.Logf("%d writes of %s through %s (owner %s), %s: %s each", writes, c, run.via.Ring().Self().ID, owner.Ring().Self().ID,
			run.how, time.Since(start)/writes)
	}

	// The owner leaves: the agent lands at a new owner among the others.
	i := slices.Index(replicas, owner)
	stops[i]()
	rest := slices.Delete(slices.Clone(replicas), i, i+1)
	waitPeers(t, rest)
	newOwner := ownerOf(t, rest, c)
	for _, h := range rest {
		landed, err := remoteWrite(agentClient(t, ca, c), h.AgentAddr().String(), now.Add(time.Second))
		if err != nil {
			t.Fatal(err)
		}
		if landed != newOwner.AgentAddr().String() {
			t.Fatalf("after %s left, %s written to %s landed at %s, not at %s", owner.Ring().Self().ID, c, h.Ring().Self().ID, landed, newOwner.AgentAddr())
		}
	}
}
