// Package tables holds the routing table an edge serves from and swaps in new ones.
package tables

import (
	"sync/atomic"

	"github.com/berry-gateway/berry/edge/internal/routing"
	berryv1 "github.com/berry-gateway/berry/pkg/api/berry/v1"
)

// Current is the table being served. The zero value serves nothing until Apply.
type Current struct {
	p         atomic.Pointer[served]
	connected atomic.Bool
}

// served pairs a table with the lineage of the snapshot it was built from, so that
// both change together.
type served struct {
	table   *routing.Table
	lineage string
}

// Table returns the table to serve from, or nil before the first snapshot.
func (c *Current) Table() *routing.Table {
	if s := c.p.Load(); s != nil {
		return s.table
	}
	return nil
}

// Applied returns the version being served, 0 for none.
func (c *Current) Applied() uint64 {
	if t := c.Table(); t != nil {
		return t.Version
	}
	return 0
}

// Lineage returns the lineage of the snapshot being served, "" for none.
func (c *Current) Lineage() string {
	if s := c.p.Load(); s != nil {
		return s.lineage
	}
	return ""
}

// Apply builds the snapshot's table and swaps it in; requests already running keep the
// table they started with. On error the current table is unchanged.
func (c *Current) Apply(s *berryv1.Snapshot) error {
	t, err := routing.Build(s)
	if err != nil {
		return err
	}
	c.p.Store(&served{table: t, lineage: s.GetLineage()})
	return nil
}

// Connected reports whether the edge's control-plane stream is up (for /readyz).
func (c *Current) Connected() bool { return c.connected.Load() }

// SetConnected records whether the control-plane stream is up.
func (c *Current) SetConnected(up bool) { c.connected.Store(up) }
