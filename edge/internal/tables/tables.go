// Package tables holds the routing table an edge serves from and swaps in new ones.
package tables

import (
	"sync/atomic"

	"github.com/berry-gateway/berry/edge/internal/routing"
	berryv1 "github.com/berry-gateway/berry/pkg/api/berry/v1"
)

// Current is the table being served. The zero value serves nothing until Apply.
type Current struct {
	p atomic.Pointer[routing.Table]
}

// Table returns the table to serve from, or nil before the first snapshot.
func (c *Current) Table() *routing.Table { return c.p.Load() }

// Applied returns the version being served, 0 for none.
func (c *Current) Applied() uint64 {
	if t := c.p.Load(); t != nil {
		return t.Version
	}
	return 0
}

// Apply builds the snapshot's table and swaps it in; requests already running keep the
// table they started with. On error the current table is unchanged.
func (c *Current) Apply(s *berryv1.Snapshot) error {
	t, err := routing.Build(s)
	if err != nil {
		return err
	}
	c.p.Store(t)
	return nil
}
