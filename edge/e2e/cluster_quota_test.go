package e2e

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	berryv1 "github.com/berry-gateway/berry/pkg/api/berry/v1"
	"github.com/berry-gateway/berry/pkg/upstreamsim"
)

// TestClusterFleetRequestLimit: one key's limit holds for a fleet whose edges are
// connected to different members of a cluster. Each edge is given one member only,
// so two of them are on followers: their quota reports reach the leader's engine
// through their member's relay, and the leader's credit comes back the same way.
// Without it the followers' edges would admit by their disconnected rule on top of
// what the leader grants.
func TestClusterFleetRequestLimit(t *testing.T) {
	if testing.Short() {
		t.Skip("drives load for up to a minute")
	}
	sim := startSim(t, upstreamsim.Options{Name: "sim"})
	c := startCPCluster(t, 3)
	leader := c.leader(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	r, err := leader.admin.ImportConfig(ctx, &berryv1.ImportConfigRequest{
		Toml: quotaTOML(sim.URL(), `rate_limit = { requests_per_minute = 60 }`), Message: t.Name()})
	cancel()
	if err != nil {
		t.Fatal(err)
	}
	members := append([]*cpMember{leader}, c.others(leader)...)
	var edges []*edge
	for i, m := range members {
		e := startCachedEdge(t, m.grpcAddr, fmt.Sprint("edge-", i+1), t.TempDir())
		e.waitVersion(t, r.GetVersion())
		edges = append(edges, e)
	}
	awaitMinuteStart(35 * time.Second)
	start := time.Now()
	var got int64
	var wg sync.WaitGroup
	// 180 requests (3× the limit) in about 25 s, evenly over the three members' edges.
	wg.Go(func() { got, _ = drive(t, edges, "quota-key", 180, []float64{1.0 / 3, 1.0 / 3, 1.0 / 3}, 7.2) })
	wg.Wait()
	if time.Now().Truncate(time.Minute) != start.Truncate(time.Minute) {
		t.Fatal("the run crossed a minute boundary; it proves nothing")
	}
	t.Logf("fleet of edges on three members admitted %d of 180 requests against a limit of 60 (%+d)", got, got-60)
	if got < 57 || got > 63 {
		t.Errorf("fleet admitted %d requests in the minute, want 57–63", got)
	}
}
