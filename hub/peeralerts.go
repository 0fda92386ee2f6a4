package hub

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/thanos-io/thanos/pkg/rules/rulespb"
	"golang.org/x/sync/errgroup"
	"google.golang.org/grpc"

	"github.com/fleetpulse/fleetpulse/hub/alerting"
)

// peerAlertsTimeout bounds one read of a peer's alerts.
const peerAlertsTimeout = 10 * time.Second

// peerAlerts reads the alerts the other replicas evaluate, over the Rules
// API each serves beside its StoreAPI, for the controllers of the replica
// that leads: with the rules split by cluster ownership, each replica
// holds the alerts of its own clusters only.
type peerAlerts struct {
	h    *Hub
	dial []grpc.DialOption

	mu    sync.Mutex
	conns map[string]*grpc.ClientConn // by StoreAPI address
}

func (h *Hub) newPeerAlerts() (*peerAlerts, error) {
	dial, err := peerDialOptions(h.cfg.PeerTLS)
	if err != nil {
		return nil, err
	}
	return &peerAlerts{h: h, dial: dial, conns: map[string]*grpc.ClientConn{}}, nil
}

// Alerts are every peer's pending and firing alerts; it fails if one
// that the membership lists does not answer.
func (p *peerAlerts) Alerts(ctx context.Context) ([]alerting.Alert, error) {
	clients, err := p.clients()
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, peerAlertsTimeout)
	defer cancel()
	g, ctx := errgroup.WithContext(ctx)
	got := make([][]alerting.Alert, len(clients))
	i := 0
	for addr, c := range clients {
		slot := i
		g.Go(func() error {
			alerts, err := alerting.PeerAlerts(ctx, c)
			if err != nil {
				return fmt.Errorf("alerts of hub replica %s: %w", addr, err)
			}
			got[slot] = alerts
			return nil
		})
		i++
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	var out []alerting.Alert
	for _, a := range got {
		out = append(out, a...)
	}
	return out, nil
}

// clients are the Rules clients of the membership's peers now, connected
// once each; the connections of replicas that left are closed.
func (p *peerAlerts) clients() (map[string]rulespb.RulesClient, error) {
	peers, err := p.h.membership.Peers()
	if err != nil {
		return nil, err
	}
	self := p.h.membership.Self()
	p.mu.Lock()
	defer p.mu.Unlock()
	out := map[string]rulespb.RulesClient{}
	for _, peer := range peers {
		if !isPeer(peer, self) {
			continue
		}
		cc, ok := p.conns[peer.GRPCAddr]
		if !ok {
			if cc, err = grpc.NewClient(peer.GRPCAddr, p.dial...); err != nil {
				return nil, fmt.Errorf("connect to hub replica %s: %w", peer.GRPCAddr, err)
			}
			p.conns[peer.GRPCAddr] = cc
		}
		out[peer.GRPCAddr] = rulespb.NewRulesClient(cc)
	}
	for addr, cc := range p.conns {
		if _, ok := out[addr]; !ok {
			_ = cc.Close()
			delete(p.conns, addr)
		}
	}
	return out, nil
}

// Close closes every connection.
func (p *peerAlerts) Close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for addr, cc := range p.conns {
		_ = cc.Close()
		delete(p.conns, addr)
	}
}
