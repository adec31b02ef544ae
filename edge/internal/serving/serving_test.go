package serving

import (
	"sync"
	"testing"
	"time"

	"github.com/berry-gateway/berry/edge/internal/backends"
	"github.com/berry-gateway/berry/edge/internal/breaker"
	berryv1 "github.com/berry-gateway/berry/pkg/api/berry/v1"
	"github.com/berry-gateway/berry/pkg/config"
)

const doc = `
[providers.p1]
name = "p1"
base_url = "http://127.0.0.1:1/v1"
models = ["m"]
[providers.p2]
name = "p2"
base_url = "http://127.0.0.1:2/v1"
models = ["m"]
[models.m]
name = "m"
[[models.m.backends]]
provider = "p1"
model = "m"
[[models.m.backends]]
provider = "p2"
model = "m"
[users.u]
name = "u"
token = "t"
rate_limit = { requests_per_minute = 5 }
`

func snapshot(t testing.TB, version uint64, lineage, toml string) *berryv1.Snapshot {
	t.Helper()
	cfg, _, err := config.ParseTOML([]byte(toml))
	if err != nil {
		t.Fatal(err)
	}
	return &berryv1.Snapshot{Version: version, Lineage: lineage, Config: cfg}
}

func TestApply(t *testing.T) {
	var rt Runtime
	if v, l := rt.Applied(); rt.Table() != nil || v != 0 || l != "" {
		t.Fatal("zero Runtime is not empty")
	}
	good := &berryv1.Config{}
	config.Normalize(good)
	if err := rt.Apply(&berryv1.Snapshot{Version: 3, Lineage: "a", Config: good}); err != nil {
		t.Fatal(err)
	}
	// An invalid snapshot is refused and the served one stays.
	if err := rt.Apply(&berryv1.Snapshot{Version: 4, Lineage: "b", Config: &berryv1.Config{}}); err == nil {
		t.Fatal("invalid snapshot applied")
	}
	if v, l := rt.Applied(); v != 3 || l != "a" || rt.Table() == nil {
		t.Fatalf("serving %d/%q", v, l)
	}
}

// TestOnlyBoundTablesAreVisible reads the table while snapshots are applied: every
// table a reader can see has its runtime state attached, and a refused snapshot
// leaves the registries as they were.
func TestOnlyBoundTablesAreVisible(t *testing.T) {
	var rt Runtime
	if err := rt.Apply(snapshot(t, 1, "l", doc)); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				tab := rt.Table()
				m := tab.ModelByName("m")
				if m.Stats == nil || !tab.UserByToken([]byte("t")).HasQuota {
					t.Error("a published table without its runtime state")
					return
				}
				for _, b := range m.Backends {
					if b.State == nil || b.Stats == nil {
						t.Error("a published backend without its runtime state")
						return
					}
				}
			}
		}()
	}
	for v := uint64(2); v < 200; v++ {
		if err := rt.Apply(snapshot(t, v, "l", doc)); err != nil {
			t.Fatal(err)
		}
	}
	close(stop)
	wg.Wait()

	before := len(rt.Backends().States())
	bad := snapshot(t, 300, "l", doc)
	bad.Config.Models[0].Backends = nil
	if err := rt.Apply(bad); err == nil {
		t.Fatal("a snapshot without backends applied")
	}
	if after := len(rt.Backends().States()); after != before {
		t.Fatalf("a refused snapshot changed the registry: %d states, had %d", after, before)
	}
}

func TestApplyFleetAndProbeAssignment(t *testing.T) {
	var rt Runtime
	if err := rt.Apply(snapshot(t, 1, "l", doc)); err != nil {
		t.Fatal(err)
	}
	st := rt.Table().ModelByName("m").Backends
	p1, p2 := st[0].State, st[1].State
	now := time.Now()
	if !rt.ProbeAssigned("p1", now) || !rt.ProbeAssigned("p2", now) {
		t.Fatal("an edge with no control plane must probe every provider")
	}
	rt.ApplyFleet([]backends.Score{
		{Key: p1.Key, Latency: 0.3, ProbeOwner: "me", Probed: true},
		{Key: p2.Key, Latency: 0.1, Down: true, ProbeOwner: "other", Probed: true},
	}, map[string]string{"p1": "me", "p2": "other"}, "me", now, now.Add(time.Second))
	if got := p1.Latency.Latency(now); got != 0.3 {
		t.Fatalf("unmeasured backend's latency = %v, want the fleet's 0.3", got)
	}
	if !p2.FleetDown() || p2.Breaker.State(now) != breaker.Open {
		t.Fatal("the fleet's down mark did not open the local breaker")
	}
	if !rt.ProbeAssigned("p1", now) || rt.ProbeAssigned("p2", now) || !rt.ProbeAssigned("unknown", now) {
		t.Fatal("probe assignment: want p1 (ours) and unknown providers probed here, p2 not")
	}

	// The control plane goes away: local estimates and probing only.
	rt.ClearFleet()
	if p1.Latency.Latency(now) != 0 || p2.FleetDown() {
		t.Fatal("fleet state survived ClearFleet")
	}
	if !rt.ProbeAssigned("p2", now) {
		t.Fatal("disconnected edge must probe every provider")
	}
	rt.AwaitProbeAssignment(now.Add(time.Second))
	if rt.ProbeAssigned("p1", now) {
		t.Fatal("connected edge awaiting assignments probed")
	}
	if !rt.ProbeAssigned("p1", now.Add(2*time.Second)) {
		t.Fatal("assignments never came, yet the edge still does not probe")
	}
}
