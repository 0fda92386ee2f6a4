package ring

import (
	"context"

	"github.com/grafana/dskit/services"
)

// Kill silences the replica as a killed process falls silent: memberlist
// stops, and its entry stays in the others' ring with its heartbeat ageing,
// never marked LEAVING.
func (r *Ring) Kill() {
	_ = services.StopAndAwaitTerminated(context.Background(), r.kv)
}
