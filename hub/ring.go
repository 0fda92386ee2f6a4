package hub

import (
	"errors"
	"fmt"
	"net"

	"github.com/grafana/dskit/services"

	"github.com/fleetpulse/fleetpulse/hub/ring"
)

// listenServers binds the agents' and the StoreAPI's ports before any
// module starts, so that the ring registers the ports they really have
// (":0" in tests picks them).
func (h *Hub) listenServers(p *parts) error {
	if h.cfg.AgentListenAddress != "" {
		ln, err := h.listen(h.cfg.AgentListenAddress)
		if err != nil {
			return err
		}
		p.agentLn, p.agentAddr = ln, ln.Addr().(*net.TCPAddr)
	}
	if h.cfg.GRPCListenAddress != "" {
		ln, err := h.listen(h.cfg.GRPCListenAddress)
		if err != nil {
			return errors.Join(err, p.closeListeners())
		}
		p.grpcLn, p.grpcAddr = ln, ln.Addr().(*net.TCPAddr)
	}
	return nil
}

// closeListeners closes the agents' and StoreAPI's listeners; their
// servers close them too, and closing one twice does no harm.
func (p *parts) closeListeners() error {
	var errs []error
	for _, ln := range []net.Listener{p.agentLn, p.grpcLn} {
		if ln != nil {
			if err := ln.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}

// ringService is the replicas' ring with --ring.enabled, joined when it
// starts and left when it stops; without, the ring of a hub that owns
// every cluster.
func (h *Hub) ringService(p *parts) (services.Service, error) {
	self, err := h.cfg.Ring.SelfInstance(p.agentAddr, p.grpcAddr, h.logger)
	if err != nil {
		return nil, err
	}
	if !h.cfg.Ring.Enabled {
		p.ring = ring.Single(self)
	} else if p.ring, err = ring.New(h.cfg.Ring, self, h.logger.With("component", "ring"), h.registry); err != nil {
		return nil, err
	}
	h.ring.Store(p.ring)
	return p.ring, nil
}

// Ring is the hub's ring once it runs: which replicas own which cluster.
// Nil before.
func (h *Hub) Ring() *ring.Ring { return h.ring.Load() }

// ringMembership is the hub's Membership with --ring.enabled: the ring,
// once its module has built it from the ports the listeners have (every
// module that reads the membership depends on the ring's). The fan-out
// reads the replicas it names, and rule results are written by each
// cluster's owners.
type ringMembership struct{ h *Hub }

var _ Membership = (*ring.Ring)(nil)

func (m ringMembership) Self() Instance {
	if r := m.h.ring.Load(); r != nil {
		return r.Self()
	}
	return Instance{}
}

func (m ringMembership) Peers() ([]Instance, error) {
	if r := m.h.ring.Load(); r != nil {
		return r.Peers()
	}
	return nil, errors.New("the ring is not running")
}

func (m ringMembership) Owns(cluster string) bool {
	r := m.h.ring.Load()
	return r != nil && r.Owns(cluster)
}

// owner is where an agent of cluster is served: "" here when this replica
// owns it, else the agents' address of an owner. With several owners
// (replication factor 2 or more) the agent is sent to the first by ID, so
// that agents of one cluster meet on one replica.
func (p *parts) owner(cluster string) (string, error) {
	if p.ring.Owns(cluster) {
		return "", nil
	}
	owners, err := p.ring.Owners(cluster)
	if err != nil {
		return "", err
	}
	if len(owners) == 0 || owners[0].HTTPAddr == "" {
		return "", fmt.Errorf("cluster %q has no owner with an agents' address", cluster)
	}
	return owners[0].HTTPAddr, nil
}
