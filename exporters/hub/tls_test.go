package hub

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/config/configgrpc"
	"go.opentelemetry.io/collector/config/configoptional"
	"go.opentelemetry.io/collector/config/configtls"
	"go.opentelemetry.io/collector/consumer/consumertest"
	"go.opentelemetry.io/collector/exporter/exporterhelper"
	"go.opentelemetry.io/collector/exporter/exportertest"
	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/collector/receiver/otlpreceiver"
	"go.opentelemetry.io/collector/receiver/receivertest"
)

// TestLogsReachOTLPReceiverOverMutualTLS sends logs through the exporter to
// the Collector's own OTLP/HTTP receiver, which demands a client certificate
// signed by its CA: the record arrives intact; an exporter without the
// certificate gets nothing through.
func TestLogsReachOTLPReceiverOverMutualTLS(t *testing.T) {
	t.Parallel()
	pki := newTestPKI(t)
	addr := freeAddr(t)

	rf := otlpreceiver.NewFactory()
	rcfg := rf.CreateDefaultConfig().(*otlpreceiver.Config)
	rcfg.GRPC = configoptional.None[configgrpc.ServerConfig]()
	httpCfg := rcfg.HTTP.GetOrInsertDefault()
	httpCfg.ServerConfig.Endpoint = addr
	httpCfg.ServerConfig.TLS = configoptional.Some(configtls.ServerConfig{
		Config:       configtls.Config{CertFile: pki.serverCert, KeyFile: pki.serverKey},
		ClientCAFile: pki.caCert,
	})
	sink := new(consumertest.LogsSink)
	rcv, err := rf.CreateLogs(context.Background(), receivertest.NewNopSettings(rf.Type()), rcfg, sink)
	if err != nil {
		t.Fatal(err)
	}
	if err := rcv.Start(context.Background(), componenttest.NewNopHost()); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = rcv.Shutdown(context.Background()) }()

	send := func(withCert bool) error {
		cfg := createDefaultConfig()
		cfg.Endpoint = "https://" + addr
		cfg.TLS.CAFile = pki.caCert
		if withCert {
			cfg.TLS.CertFile, cfg.TLS.KeyFile = pki.clientCert, pki.clientKey
		}
		cfg.QueueConfig = configoptional.None[exporterhelper.QueueBatchConfig]()
		cfg.BackOffConfig.Enabled = false
		set := exportertest.NewNopSettings(typeStr)
		exp, err := NewFactory().CreateLogs(context.Background(), set, cfg)
		if err != nil {
			t.Fatal(err)
		}
		if err := exp.Start(context.Background(), componenttest.NewNopHost()); err != nil {
			t.Fatal(err)
		}
		defer func() { _ = exp.Shutdown(context.Background()) }()
		ld := plog.NewLogs()
		rl := ld.ResourceLogs().AppendEmpty()
		rl.Resource().Attributes().PutStr("k8s.cluster.name", "cluster-a")
		rl.ScopeLogs().AppendEmpty().LogRecords().AppendEmpty().Body().SetStr("BackOff: restarting container")
		return exp.ConsumeLogs(context.Background(), ld)
	}

	if err := send(false); err == nil {
		t.Error("an exporter without a client certificate got logs through")
	}
	if err := send(true); err != nil {
		t.Fatalf("send with client certificate: %v", err)
	}
	if sink.LogRecordCount() != 1 {
		t.Fatalf("receiver got %d records, want 1", sink.LogRecordCount())
	}
	rl := sink.AllLogs()[0].ResourceLogs().At(0)
	if v, _ := rl.Resource().Attributes().Get("k8s.cluster.name"); v.Str() != "cluster-a" {
		t.Errorf("k8s.cluster.name = %q", v.Str())
	}
	if b := rl.ScopeLogs().At(0).LogRecords().At(0).Body().Str(); b != "BackOff: restarting container" {
		t.Errorf("body = %q", b)
	}
}

type testPKI struct{ caCert, serverCert, serverKey, clientCert, clientKey string }

// newTestPKI writes a CA, a server certificate for 127.0.0.1 and a client
// certificate, all signed by the CA.
func newTestPKI(t *testing.T) testPKI {
	t.Helper()
	dir := t.TempDir()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test-ca"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	p := testPKI{caCert: filepath.Join(dir, "ca.crt")}
	writePEM(t, p.caCert, "CERTIFICATE", caDER)
	issue := func(name string, serial int64, usage x509.ExtKeyUsage, ips []net.IP) (string, string) {
		key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: name},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
			ExtKeyUsage: []x509.ExtKeyUsage{usage}, KeyUsage: x509.KeyUsageDigitalSignature, IPAddresses: ips,
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		keyDER, _ := x509.MarshalPKCS8PrivateKey(key)
		certPath, keyPath := filepath.Join(dir, name+".crt"), filepath.Join(dir, name+".key")
		writePEM(t, certPath, "CERTIFICATE", der)
		writePEM(t, keyPath, "PRIVATE KEY", keyDER)
		return certPath, keyPath
	}
	p.serverCert, p.serverKey = issue("hub", 2, x509.ExtKeyUsageServerAuth, []net.IP{net.ParseIP("127.0.0.1")})
	p.clientCert, p.clientKey = issue("cluster-a", 3, x509.ExtKeyUsageClientAuth, nil)
	return p
}

func writePEM(t *testing.T, path, typ string, der []byte) {
	t.Helper()
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}
