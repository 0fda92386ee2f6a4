package hub

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"math"
	"os"
	"slices"
	"time"

	"github.com/grafana/dskit/services"
	"github.com/prometheus/client_golang/prometheus"
	// Thanos's gRPC codec: received StoreAPI messages are decoded into
	// buffers of their own. With slicelabels, series labels and chunks
	// point into the message's bytes and outlive the Recv; grpc-go's own
	// codec returns those bytes to its pool after Unmarshal, and the next
	// message overwrites them under a running query (chunks that read as
	// EOF, label values never written). `thanos query` links it too.
	_ "github.com/thanos-io/thanos/pkg/extgrpc"
	"github.com/thanos-io/thanos/pkg/query"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/fleetpulse/fleetpulse/internal/kitlog"
)

// ModuleFanout keeps the hub's view of its peers' StoreAPIs current, so
// that its queries and rules read the whole fleet.
const ModuleFanout = "fanout"

// Thanos query's endpoint timings: how long a peer's Info call may take,
// and how long a peer that stopped answering stays listed (it is not
// queried meanwhile).
const (
	peerInfoTimeout      = 5 * time.Second
	peerUnhealthyTimeout = 5 * time.Minute
)

// newPeerSet builds Thanos's endpoint set over the StoreAPIs of the
// membership's other replicas, as `thanos query` builds its own over
// --endpoint. It starts nothing: the fanout module updates it.
func (h *Hub) newPeerSet() (*query.EndpointSet, error) {
	dial, err := peerDialOptions(h.cfg.PeerTLS)
	if err != nil {
		return nil, err
	}
	self := h.membership.Self()
	logger := h.logger.With("component", "fanout")
	specs := func() []*query.GRPCEndpointSpec {
		peers, err := h.membership.Peers()
		if err != nil {
			logger.Warn("list the hub's peers; the last list stays", "err", err)
			return nil
		}
		var out []*query.GRPCEndpointSpec
		for _, p := range peers {
			if !isPeer(p, self) {
				continue
			}
			out = append(out, query.NewGRPCEndpointSpec(p.GRPCAddr, false, dial...))
		}
		return out
	}
	return query.NewEndpointSet(time.Now, kitlog.New(logger), prometheus.WrapRegistererWithPrefix("fleetpulse_hub_peers_", h.registry),
		specs, peerUnhealthyTimeout, peerInfoTimeout, h.cfg.Query.Timeout), nil
}

// How often the fanout module compares the membership's peers with those
// it reads: reading the ring is local and cheap, and a replica that joins,
// or takes a cluster over, should be read at once rather than a refresh
// interval later. A listed peer that is not read yet (its Info call failed:
// it was not ready) is asked again every peerRetryInterval.
const (
	peerCheckInterval = 250 * time.Millisecond
	peerRetryInterval = time.Second
)

// fanoutService updates the peer set every PeerRefreshInterval, as soon as
// the membership's peers change, and while a listed peer is not read:
// replicas that answer their Info call are read, the others are not. It
// closes the peers' connections when it stops, after every query that
// reads them.
func (h *Hub) fanoutService(p *parts) services.Service {
	var (
		listed  []Instance
		updated time.Time
	)
	update := func(ctx context.Context) {
		ctx, cancel := context.WithTimeout(ctx, h.cfg.PeerRefreshInterval+peerInfoTimeout)
		defer cancel()
		if peers, err := h.membership.Peers(); err == nil {
			listed = peers
		}
		p.peers.Update(ctx)
		updated = time.Now()
	}
	due := func() bool {
		since := time.Since(updated)
		if since >= h.cfg.PeerRefreshInterval {
			return true
		}
		peers, err := h.membership.Peers()
		if err != nil {
			return false
		}
		if !slices.Equal(peers, listed) {
			return true
		}
		return since >= peerRetryInterval && !h.readsEvery(p, peers)
	}
	return services.NewTimerService(min(peerCheckInterval, h.cfg.PeerRefreshInterval), func(ctx context.Context) error {
		update(ctx)
		return nil
	}, func(ctx context.Context) error {
		if due() {
			update(ctx)
		}
		return nil
	}, func(error) error {
		p.peers.Close()
		return nil
	})
}

// readsEvery tells whether the peer set reads every one of peers but this
// replica.
func (h *Hub) readsEvery(p *parts, peers []Instance) bool {
	read := map[string]bool{}
	for _, c := range p.peers.GetStoreClients() {
		addr, _ := c.Addr()
		read[addr] = true
	}
	self := h.membership.Self()
	for _, peer := range peers {
		if isPeer(peer, self) && !read[peer.GRPCAddr] {
			return false
		}
	}
	return true
}

// isPeer tells whether the replica is another one than self, with a
// StoreAPI to read.
func isPeer(replica, self Instance) bool {
	return replica.ID != self.ID && replica.GRPCAddr != "" && replica.GRPCAddr != self.GRPCAddr
}

// peerBackoff spaces the reconnects to a peer that went away. gRPC's
// default grows to two minutes, so a replica that was down for half a
// minute would be read again only some ten seconds after it is back (and
// a stock `thanos query` does wait that long); a peer is one replica of
// the same deployment, and its clusters' data is missing from every
// answer until it is read.
var peerBackoff = backoff.Config{BaseDelay: 100 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: peerRetryInterval}

// peerDialOptions are the gRPC options of the connections to the peers'
// StoreAPIs: TLS with the peers' CA (and a client certificate when they
// require one), or plain gRPC.
func peerDialOptions(c PeerTLSConfig) ([]grpc.DialOption, error) {
	opts := []grpc.DialOption{grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(math.MaxInt32)),
		grpc.WithConnectParams(grpc.ConnectParams{Backoff: peerBackoff, MinConnectTimeout: peerInfoTimeout})}
	if c.CAFile == "" {
		return append(opts, grpc.WithTransportCredentials(insecure.NewCredentials())), nil
	}
	caPEM, err := os.ReadFile(c.CAFile)
	if err != nil {
		return nil, fmt.Errorf("peers' StoreAPI CA: %w", err)
	}
	cfg := &tls.Config{RootCAs: x509.NewCertPool(), ServerName: c.ServerName, MinVersion: tls.VersionTLS12}
	if !cfg.RootCAs.AppendCertsFromPEM(caPEM) {
		return nil, fmt.Errorf("peers' StoreAPI CA %q holds no PEM certificate", c.CAFile)
	}
	if c.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(c.CertFile, c.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("client certificate for the peers' StoreAPIs: %w", err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return append(opts, grpc.WithTransportCredentials(credentials.NewTLS(cfg))), nil
}

// leadsFleet tells whether this replica evaluates the fleet-wide rule
// groups and writes the results that name no cluster: the replica that
// leads the controllers or, without leader election, the owner of the
// empty cluster name.
func (h *Hub) leadsFleet() bool {
	if h.cfg.ControlPlaneKubeconfig != "" && h.cfg.ControlPlane.LeaderElect {
		cp := h.manager.Load()
		return cp != nil && cp.Leading()
	}
	return h.membership.Owns("")
}
