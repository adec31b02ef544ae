package e2e

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/berry-gateway/berry/edge/internal/backends"
	"github.com/berry-gateway/berry/edge/internal/cpsync"
	"github.com/berry-gateway/berry/edge/internal/serving"
	berryv1 "github.com/berry-gateway/berry/pkg/api/berry/v1"
	"github.com/berry-gateway/berry/pkg/config"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

var (
	propEdges    = flag.Int("fleet-edges", 100, "edges in TestFleetScoreReachesEveryEdge")
	propInterval = flag.Duration("fleet-interval", 100*time.Millisecond, "report and score interval in TestFleetScoreReachesEveryEdge")
)

// From a report to every edge: 100 in-process edges (the real sync client and
// runtime) on one real control plane; one edge takes a slower sample and the test
// measures how long until the new fleet score is installed at all 100. Reported, not
// asserted beyond a generous bound: it is report interval + score interval + transit.
//
// Larger runs: go test ./edge/e2e -run TestFleetScoreReachesEveryEdge -v -args -fleet-edges 1000 -fleet-interval 1s
func TestFleetScoreReachesEveryEdge(t *testing.T) {
	n, interval := *propEdges, *propInterval
	const rounds = 5
	cp := startSecuredCP(t, filepath.Join(t.TempDir(), "berry.db"), "", "--score-interval", interval.String())
	conn, err := grpc.NewClient(cp.addr, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithPerRPCCredentials(bearerCreds(edgeToken)))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	cfg, _, err := config.ParseTOML([]byte(`
[providers.p]
name = "p"
base_url = "http://127.0.0.1:1/v1"
models = ["m"]
[models.x]
name = "x"
[[models.x.backends]]
provider = "p"
model = "m"
`))
	if err != nil {
		t.Fatal(err)
	}
	states := make([]*backends.State, n)
	for i := range n {
		// Each edge serves the backend from a local snapshot: the control plane has
		// none to send.
		rt := &serving.Runtime{}
		if err := rt.Apply(&berryv1.Snapshot{Version: 1, Lineage: "local", Config: cfg}); err != nil {
			t.Fatal(err)
		}
		states[i] = rt.Table().ModelByName("x").Backends[0].State
		c := &cpsync.Client{Conn: conn, EdgeID: fmt.Sprintf("prop-%03d", i), BuildVersion: "e2e",
			Runtime: rt, Fleet: rt, Log: quiet, ReportInterval: interval}
		wg.Add(1)
		go func() { defer wg.Done(); _ = c.Run(ctx) }()
	}
	var took []time.Duration
	for r := range rounds {
		want := float64(r + 1) // seconds; each round slower, so peak-EWMA takes it at once
		start := time.Now()
		states[0].Latency.Observe(time.Duration(want*float64(time.Second)), start)
		eventually(t, fmt.Sprintf("round %d: all %d edges hold fleet latency %vs", r, n, want), func() error {
			now := time.Now()
			for i, s := range states {
				if got := s.Latency.FleetLatency(now); got != want {
					return fmt.Errorf("edge %d has %v", i, got)
				}
			}
			return nil
		})
		took = append(took, time.Since(start))
	}
	slices.Sort(took)
	t.Logf("report → score at all %d edges (report and score interval %v; polled every 25ms): min %v, median %v, max %v over %d rounds",
		n, interval, took[0].Round(time.Millisecond), took[len(took)/2].Round(time.Millisecond), took[len(took)-1].Round(time.Millisecond), rounds)
}
