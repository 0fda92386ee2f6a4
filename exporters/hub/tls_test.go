package hub

import (
	"context"
	"testing"

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

	"github.com/fleetpulse/fleetpulse/exporters/hub/internal/metadata"
	"github.com/fleetpulse/fleetpulse/testbed"
)

// TestLogsReachOTLPReceiverOverMutualTLS sends logs through the exporter to
// the Collector's own OTLP/HTTP receiver, which demands a client certificate
// signed by its CA: the record arrives intact; an exporter without the
// certificate gets nothing through.
func TestLogsReachOTLPReceiverOverMutualTLS(t *testing.T) {
	t.Parallel()
	ca := testbed.NewCA(t, "hub-ca")
	serverCert, serverKey := ca.Server("hub")
	clientCert, clientKey := ca.Client("cluster-a")
	addr := testbed.FreeAddr(t)

	rf := otlpreceiver.NewFactory()
	rcfg := rf.CreateDefaultConfig().(*otlpreceiver.Config)
	rcfg.GRPC = configoptional.None[configgrpc.ServerConfig]()
	httpCfg := rcfg.HTTP.GetOrInsertDefault()
	httpCfg.ServerConfig.Endpoint = addr
	httpCfg.ServerConfig.TLS = configoptional.Some(configtls.ServerConfig{
		Config:       configtls.Config{CertFile: serverCert, KeyFile: serverKey},
		ClientCAFile: ca.CertFile,
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
		cfg.TLS.CAFile = ca.CertFile
		if withCert {
			cfg.TLS.CertFile, cfg.TLS.KeyFile = clientCert, clientKey
		}
		cfg.QueueConfig = configoptional.None[exporterhelper.QueueBatchConfig]()
		cfg.BackOffConfig.Enabled = false
		set := exportertest.NewNopSettings(metadata.Type)
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
