package e2e

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/gogo/protobuf/proto"
	"github.com/golang/snappy"
	promapi "github.com/prometheus/client_golang/api"
	promv1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/prompb"

	"github.com/fleetpulse/fleetpulse/testbed"
)

// TestAcknowledgedSamplesSurviveKill9 writes to a `fleetpulse hub` process,
// kills it with SIGKILL in the middle of the writes, starts it again on the
// same storage, and checks that every sample it acknowledged is queryable.
func TestAcknowledgedSamplesSurviveKill9(t *testing.T) {
	t.Parallel()
	bin := buildBinary(t, "fleetpulse")
	ca := testbed.NewCA(t, "crash-agents")
	serverCert, serverKey := ca.Server("hub")
	clientCert, clientKey := ca.Client("cluster-a")
	httpAddr, agentAddr, dataDir := testbed.FreeAddr(t), testbed.FreeAddr(t), t.TempDir()
	start := func() *exec.Cmd {
		cmd := exec.Command(bin, "hub", "--http.listen-address="+httpAddr, "--agents.listen-address="+agentAddr,
			"--agents.tls-cert-file="+serverCert, "--agents.tls-key-file="+serverKey, "--agents.client-ca-file="+ca.CertFile,
			"--storage.tsdb.path="+dataDir)
		cmd.Stderr = processLog(t, "hub")
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(60 * time.Second)
		for {
			resp, err := http.Get("http://" + httpAddr + "/-/ready")
			if err == nil {
				resp.Body.Close()
				if resp.StatusCode == http.StatusOK {
					return cmd
				}
			}
			if time.Now().After(deadline) {
				t.Fatalf("hub not ready within 60s: %v", err)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}

	hub := start()
	client := mtlsClient(t, ca.CertFile, clientCert, clientKey)
	base := time.Now().Add(-10 * time.Minute)
	const seriesPerRequest = 100
	acked, sent := 0, 0
	for i := 0; i < 400; i++ {
		if i == 200 {
			if err := hub.Process.Kill(); err != nil { // SIGKILL: no shutdown, no flush
				t.Fatal(err)
			}
			_ = hub.Wait()
		}
		sent += seriesPerRequest
		if postWrite(client, "https://"+agentAddr+"/api/v1/write", i, base.Add(time.Duration(i)*time.Second), seriesPerRequest) {
			acked += seriesPerRequest
		}
	}
	if acked == 0 || acked == sent {
		t.Fatalf("acknowledged %d of %d samples: the kill did not land mid-stream", acked, sent)
	}

	hub = start()
	t.Cleanup(func() { _ = hub.Process.Kill(); _ = hub.Wait() })
	c, err := promapi.NewClient(promapi.Config{Address: "http://" + httpAddr})
	if err != nil {
		t.Fatal(err)
	}
	v, _, err := promv1.NewAPI(c).Query(context.Background(), `sum(count_over_time(crash_probe{cluster="cluster-a"}[1h]))`, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	vec, ok := v.(model.Vector)
	if !ok || len(vec) != 1 {
		t.Fatalf("query after restart: %v", v)
	}
	if got := int(vec[0].Value); got < acked || got > sent {
		t.Fatalf("after kill -9 and restart the hub holds %d samples; it acknowledged %d (of %d sent)", got, acked, sent)
	}
	t.Logf("acknowledged %d of %d samples before the kill; all queryable after restart", acked, sent)
}

func mtlsClient(t *testing.T, caFile, certFile, keyFile string) *http.Client {
	t.Helper()
	pool := x509.NewCertPool()
	caPEM, err := os.ReadFile(caFile)
	if err != nil {
		t.Fatal(err)
	}
	pool.AppendCertsFromPEM(caPEM)
	pair, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	return &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{pair}},
	}}
}

// postWrite sends one remote-write request of n series and reports whether
// the hub acknowledged it.
func postWrite(client *http.Client, url string, i int, ts time.Time, n int) bool {
	req := &prompb.WriteRequest{}
	for s := range n {
		req.Timeseries = append(req.Timeseries, prompb.TimeSeries{
			Labels:  []prompb.Label{{Name: "__name__", Value: "crash_probe"}, {Name: "series", Value: fmt.Sprint(s)}},
			Samples: []prompb.Sample{{Value: float64(i), Timestamp: ts.UnixMilli()}},
		})
	}
	raw, err := proto.Marshal(req)
	if err != nil {
		return false
	}
	hr, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(snappy.Encode(nil, raw)))
	if err != nil {
		return false
	}
	hr.Header.Set("Content-Encoding", "snappy")
	hr.Header.Set("Content-Type", "application/x-protobuf")
	hr.Header.Set("X-Prometheus-Remote-Write-Version", "0.1.0")
	resp, err := client.Do(hr)
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode/100 == 2
}
