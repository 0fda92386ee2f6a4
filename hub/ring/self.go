package ring

import (
	"fmt"
	"log/slog"
	"net"
	"strconv"

	"github.com/grafana/dskit/netutil"
	dskitring "github.com/grafana/dskit/ring"

	"github.com/fleetpulse/fleetpulse/internal/kitlog"
)

// SelfInstance is this replica as it registers in the ring: its ID, and
// the agents' and StoreAPI listeners' ports at InstanceAddr. Without
// InstanceAddr, the agents' listener's host when it is a specific one,
// else the first private network interface's address (dskit's choice,
// as Mimir makes it). grpc is nil without a StoreAPI.
func (c Config) SelfInstance(agents, grpc *net.TCPAddr, logger *slog.Logger) (Instance, error) {
	self := Instance{ID: c.InstanceID}
	if agents == nil {
		return self, nil
	}
	host := c.InstanceAddr
	if host == "" && !agents.IP.IsUnspecified() {
		host = agents.IP.String()
	}
	if host == "" {
		if logger == nil {
			logger = slog.New(slog.DiscardHandler)
		}
		klog := kitlog.New(logger)
		var err error
		host, err = dskitring.GetInstanceAddr("", netutil.PrivateNetworkInterfacesWithFallback([]string{"eth0", "en0"}, klog), klog, false)
		if err != nil {
			return Instance{}, fmt.Errorf("find this replica's address for the ring (set --ring.instance-addr): %w", err)
		}
	}
	self.HTTPAddr = net.JoinHostPort(host, strconv.Itoa(agents.Port))
	if grpc != nil {
		self.GRPCAddr = net.JoinHostPort(host, strconv.Itoa(grpc.Port))
	}
	return self, nil
}
