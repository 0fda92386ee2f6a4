package hub

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"math"
	"net"
	"os"
	"time"

	"github.com/grafana/dskit/services"
	"github.com/thanos-io/thanos/pkg/component"
	"github.com/thanos-io/thanos/pkg/info"
	"github.com/thanos-io/thanos/pkg/info/infopb"
	thanosrules "github.com/thanos-io/thanos/pkg/rules"
	"github.com/thanos-io/thanos/pkg/store"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"github.com/fleetpulse/fleetpulse/internal/kitlog"
)

// ModuleStoreAPI is Thanos's gRPC StoreAPI (and Info API) over the store,
// on --grpc.listen-address, for a stock `thanos query` to fan out over hub
// replicas.
const ModuleStoreAPI = "storeapi"

// storeAPIService serves Thanos's StoreAPI over the store's ProxyStore: the
// same series, with the same labels, as the hub's own queries read.
func (h *Hub) storeAPIService(p *parts) services.Service {
	var (
		srv    *grpc.Server
		ln     net.Listener
		served = make(chan error, 1)
	)
	return services.NewBasicService(func(context.Context) error {
		opts := []grpc.ServerOption{grpc.MaxSendMsgSize(math.MaxInt32), grpc.MaxRecvMsgSize(math.MaxInt32)}
		if h.cfg.GRPCTLS.CertFile != "" {
			tlsCfg, err := grpcTLS(h.cfg.GRPCTLS)
			if err != nil {
				return err
			}
			opts = append(opts, grpc.Creds(credentials.NewTLS(tlsCfg)))
		}
		ln = p.grpcLn
		proxy := p.store.StoreServer()
		srv = grpc.NewServer(opts...)
		store.RegisterStoreServer(proxy, kitlog.New(h.logger.With("component", "storeapi")))(srv)
		if p.alerts != nil && h.membership != nil {
			// Not advertised in the Info API: a stock thanos query would
			// keep one replica's copy of each rule, and so of its alerts.
			thanosrules.RegisterRulesServer(p.alerts)(srv)
		}
		info.RegisterInfoServer(info.NewInfoServer(component.Store.String(),
			// No external labels: every series carries its cluster label,
			// and clusters are disjoint between replicas.
			info.WithStoreInfoFunc(func() (*infopb.StoreInfo, error) {
				if !h.ready.Load() {
					return nil, errors.New("the hub is not ready")
				}
				// A replica that ingests can be written, at any moment,
				// samples older than everything it holds: the first
				// write of a cluster that moved to it, an agent's backlog,
				// a replicated write. Its readers keep the MinTime of
				// their last Info call until the next (the peer refresh
				// interval) and skip a store whose range misses the
				// query's, so an older MinTime would hide samples this
				// replica has acknowledged. The advertised range starts
				// at the beginning of time, as the head's does.
				_, maxTime := proxy.TimeRange()
				return &infopb.StoreInfo{MinTime: math.MinInt64, MaxTime: maxTime, SupportsSharding: true,
					SupportsWithoutReplicaLabels: true, TsdbInfos: proxy.TSDBInfos()}, nil
			})))(srv)
		return nil
	}, func(ctx context.Context) error {
		go func() { served <- srv.Serve(ln) }()
		select {
		case err := <-served:
			return fmt.Errorf("serve the StoreAPI: %w", err)
		case <-ctx.Done():
			return nil
		}
	}, func(failure error) error {
		if failure != nil {
			return nil
		}
		// Streams in flight complete within the shutdown timeout, before
		// the store they read closes.
		stopped := make(chan struct{})
		go func() { srv.GracefulStop(); close(stopped) }()
		select {
		case <-stopped:
		case <-time.After(h.cfg.ShutdownTimeout):
			srv.Stop()
		}
		return nil
	})
}

// grpcTLS is the StoreAPI's TLS: its certificate, and with a client CA,
// a client certificate from that CA required in the handshake.
func grpcTLS(c TLSConfig) (*tls.Config, error) {
	cert, err := tls.LoadX509KeyPair(c.CertFile, c.KeyFile)
	if err != nil {
		return nil, fmt.Errorf("StoreAPI TLS certificate: %w", err)
	}
	cfg := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	if c.ClientCAFile != "" {
		caPEM, err := os.ReadFile(c.ClientCAFile)
		if err != nil {
			return nil, fmt.Errorf("StoreAPI client CA: %w", err)
		}
		cfg.ClientCAs = x509.NewCertPool()
		if !cfg.ClientCAs.AppendCertsFromPEM(caPEM) {
			return nil, fmt.Errorf("StoreAPI client CA %q holds no PEM certificate", c.ClientCAFile)
		}
		cfg.ClientAuth = tls.RequireAndVerifyClientCert
	}
	return cfg, nil
}
