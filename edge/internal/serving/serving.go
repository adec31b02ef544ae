// Package serving owns what an edge serves from: the routing table of the last
// snapshot it applied, bound to the runtime registries that outlive tables (backend
// state, rate limits), and the fleet's view the control plane pushes (scores, probe
// assignment). It is the single owner of that state; the proxy, the health checker,
// the control-plane sync and the status pages each see it through a small interface
// of their own.
//
// Applying a snapshot is build → bind → publish: routing.Build compiles the snapshot
// and binds it to the registries, and only then is the table stored for readers, so a
// table is fully usable from the moment any request can see it, and nothing is bound
// lazily on the request path.
package serving

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/berry-gateway/berry/edge/internal/backends"
	"github.com/berry-gateway/berry/edge/internal/meter"
	"github.com/berry-gateway/berry/edge/internal/quota"
	"github.com/berry-gateway/berry/edge/internal/routing"
	berryv1 "github.com/berry-gateway/berry/pkg/api/berry/v1"
)

// Runtime is an edge's serving state. The zero value serves nothing until Apply.
type Runtime struct {
	applyMu  sync.Mutex // one snapshot at a time: Build prunes the registries
	cur      atomic.Pointer[served]
	backends backends.Registry
	probes   probeAssignment
	// quota holds the keys' fleet credit, and meter the usage not yet reported:
	// both outlive tables (a key keeps its credit across config versions).
	quota quota.Ledger
	meter meter.Meter
}

// served pairs a table with the lineage and content hash of the snapshot it was
// built from, so that they change together.
type served struct {
	table   *routing.Table
	lineage string
	hash    []byte
}

// Apply builds the snapshot's table, binds it and publishes it; requests already
// running keep the table they started with. On error nothing changes.
func (r *Runtime) Apply(s *berryv1.Snapshot) error {
	r.applyMu.Lock()
	defer r.applyMu.Unlock()
	t, err := routing.Build(s, routing.Registries{Backends: &r.backends})
	if err != nil {
		return err
	}
	r.quota.SetMode(t.Settings.QuotaWhenDisconnected)
	r.cur.Store(&served{table: t, lineage: s.GetLineage(), hash: s.GetContentHash()})
	return nil
}

// Quota is the keys' fleet credit.
func (r *Runtime) Quota() *quota.Ledger { return &r.quota }

// Meter is the usage not yet reported to the control plane.
func (r *Runtime) Meter() *meter.Meter { return &r.meter }

// Table returns the table to serve from, or nil before the first snapshot.
func (r *Runtime) Table() *routing.Table {
	if s := r.cur.Load(); s != nil {
		return s.table
	}
	return nil
}

// Applied returns the version being served and the lineage of its snapshot (0 and ""
// for none).
func (r *Runtime) Applied() (version uint64, lineage string) {
	if s := r.cur.Load(); s != nil {
		return s.table.Version, s.lineage
	}
	return 0, ""
}

// AppliedHash returns the content hash of the snapshot being served (nil for none, or
// for a snapshot without one).
func (r *Runtime) AppliedHash() []byte {
	if s := r.cur.Load(); s != nil {
		return s.hash
	}
	return nil
}

// Backends returns the backend registry, for observations and exposition.
func (r *Runtime) Backends() *backends.Registry { return &r.backends }

// Observations returns what this edge saw of its backends since the previous call.
func (r *Runtime) Observations(now time.Time) []backends.Observation {
	return r.backends.Observations(now)
}

// ApplyFleet installs what the control plane pushed: the fleet's scores and which
// edge probes which provider (self is this edge's id), valid until expires.
func (r *Runtime) ApplyFleet(scores []backends.Score, probeOwners map[string]string, self string, now, expires time.Time) {
	r.probes.assign(probeOwners, self)
	r.backends.ApplyScores(scores, self, now, expires)
}

// ClearFleet forgets the fleet's view (the control plane is gone): local estimates
// and local probing of every provider.
func (r *Runtime) ClearFleet() {
	r.probes.clear()
	r.backends.ClearFleet()
}
