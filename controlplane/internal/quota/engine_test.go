package quota

import (
	"fmt"
	"testing"
	"time"

	berryv1 "github.com/berry-gateway/berry/pkg/api/berry/v1"
)

const (
	rpm    = berryv1.QuotaDimension_QUOTA_DIMENSION_REQUESTS_MINUTE
	tpm    = berryv1.QuotaDimension_QUOTA_DIMENSION_TOKENS_MINUTE
	rpd    = berryv1.QuotaDimension_QUOTA_DIMENSION_REQUESTS_DAY
	cday   = berryv1.QuotaDimension_QUOTA_DIMENSION_COST_DAY
	cmonth = berryv1.QuotaDimension_QUOTA_DIMENSION_COST_MONTH
)

// t0 is a minute boundary.
var t0 = time.Date(2026, 3, 14, 15, 9, 0, 0, time.UTC)

func TestWindows(t *testing.T) {
	at := time.Date(2026, 12, 31, 23, 59, 59, 0, time.UTC)
	for _, tt := range []struct {
		d    berryv1.QuotaDimension
		want int64
		end  time.Time
	}{
		{rpm, at.Unix() / 60, time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC)},
		{berryv1.QuotaDimension_QUOTA_DIMENSION_REQUESTS_HOUR, at.Unix() / 3600, time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC)},
		{rpd, at.Unix() / 86400, time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC)},
		{cmonth, 2026*12 + 11, time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC)},
	} {
		w := Window(tt.d, at)
		if w != tt.want || !WindowEnd(tt.d, w).Equal(tt.end) || WindowStart(tt.d, w+1) != WindowEnd(tt.d, w) {
			t.Errorf("%v: window %d (want %d), end %v (want %v)", tt.d, w, tt.want, WindowEnd(tt.d, w), tt.end)
		}
		if !WindowStart(tt.d, w).After(at.Add(-32*24*time.Hour)) || WindowStart(tt.d, w).After(at) {
			t.Errorf("%v: start %v", tt.d, WindowStart(tt.d, w))
		}
	}
	// The month window of a time in another zone is its UTC month.
	if w := Window(cmonth, time.Date(2027, 1, 1, 0, 30, 0, 0, time.FixedZone("x", 3600))); w != 2026*12+11 {
		t.Errorf("month of 2026-12-31T23:30Z: %d", w)
	}
	l := LimitsOf(&berryv1.User{
		RateLimit: &berryv1.RateLimit{RequestsPerMinute: 60, TokensPerDay: 1e6},
		Budget:    &berryv1.Budget{UsdPerDay: 1.5, UsdPerMonth: 1e-9},
	})
	if l.Get(rpm) != 60 || l.Get(berryv1.QuotaDimension_QUOTA_DIMENSION_TOKENS_DAY) != 1e6 || l.Get(cday) != 1_500_000 ||
		l.Get(cmonth) != 0 || l.Get(rpd) != 0 || l.Get(0) != 0 {
		t.Errorf("limits %v", l)
	}
	if got := LimitsFromConfig(&berryv1.Config{Users: []*berryv1.User{{Id: "a"}, {Id: "b", Budget: &berryv1.Budget{UsdPerDay: 2}}}}); len(got) != 1 || got["b"].Get(cday) != 2e6 {
		t.Errorf("LimitsFromConfig: %v", got)
	}
}

// The fleet admits what the limit allows and no more, whatever the edges' shares of
// the demand: 60 requests a minute over 3 or 5 edges with skewed demand at three
// times the limit.
func TestFleetExact(t *testing.T) {
	for _, tc := range []struct {
		shares  []float64
		latency time.Duration
	}{
		{[]float64{0.8, 0.1, 0.1}, 30 * time.Millisecond},
		{[]float64{0.8, 0.1, 0.1}, 400 * time.Millisecond},
		{[]float64{0.6, 0.1, 0.1, 0.1, 0.1}, 30 * time.Millisecond},
		{[]float64{0.6, 0.1, 0.1, 0.1, 0.1}, 400 * time.Millisecond},
		{[]float64{0.2, 0.2, 0.2, 0.2, 0.2}, 100 * time.Millisecond},
	} {
		shares := tc.shares
		t.Run(fmt.Sprint(shares, tc.latency), func(t *testing.T) {
			const limit, minutes = 60, 6
			s := newSim(t0, len(shares), "alice", rpm, limit)
			s.latency = tc.latency
			for i, sh := range shares {
				s.rates[i] = 3 * limit / 60.0 * sh // per second
			}
			s.run(minutes * time.Minute)
			w0 := Window(rpm, t0)
			var figures []int64
			for w := w0; w < w0+minutes; w++ {
				n := s.admitted(w)
				figures = append(figures, n)
				if n > limit || n < 57 {
					t.Errorf("window %d: admitted %d, want 57..60", w-w0, n)
				}
			}
			var refused int64
			for _, e := range s.edges {
				refused += e.refused
			}
			t.Logf("admitted per minute %v (limit %d, demand %d a minute), refused %d in all", figures, limit, 3*limit, refused)
		})
	}
}

// Token limits too: each request costs 100 to 2,000 tokens, settled afterwards
// (reserve 1,000, then the difference, positive or negative).
func TestFleetExactTokens(t *testing.T) {
	const limit = 100_000
	clk := newClock(t0)
	eng := New(Options{Now: clk.Now, Instance: "cp"})
	var l Limits
	l[tpm] = limit
	eng.SetLimits(map[string]Limits{"k": l})
	edges := []*simEdge{newSimEdge("a"), newSimEdge("b"), newSimEdge("c")}
	for _, e := range edges {
		eng.Connect(e.id)
	}
	var admitted int64
	for step := range 180 { // 3 minutes of 1 s steps
		now := clk.Now()
		w := Window(tpm, now)
		for i, e := range edges {
			for r := range 3 + 4*i { // skewed demand, well over the limit
				if e.request(now, "k", tpm, 1000) {
					actual := int64(100 + (step*7+r*13+i)%1900)
					x := e.st(simKey{"k", tpm, w})
					x.consumed += actual - 1000 // the settlement, negative when below the reservation
					x.balance -= actual - 1000
					e.admitted[simKey{"k", tpm, w}] += actual - 1000
				}
			}
			eng.Observe(e.id, e.batch(now))
		}
		for _, id := range eng.Tick() {
			for _, e := range edges {
				if e.id == id {
					e.apply(now, eng.Take(id))
				}
			}
		}
		clk.Advance(time.Second)
	}
	for w := Window(tpm, t0); w < Window(tpm, t0)+3; w++ {
		var n int64
		for _, e := range edges {
			n += e.admitted[simKey{"k", tpm, w}]
		}
		admitted += n
		// A settled request may exceed its reservation: the fleet may go over by what
		// requests in flight settle above their reservations (here < 1,000 each).
		if n > limit+3*1000 || n < limit*9/10 {
			t.Errorf("window %d: %d tokens admitted, limit %d", w, n, limit)
		}
	}
	t.Logf("tokens admitted over 3 minutes: %d (limit %d a minute)", admitted, limit)
}

func observe(eng *Engine, edge string, seq uint64, reports ...*berryv1.QuotaReport) bool {
	return eng.Observe(edge, &berryv1.ObservationBatch{Seq: seq, Instance: edge + "-1", Quota: reports})
}

// ack is observe with the confirmation of every grant taken for edge so far.
func ack(eng *Engine, edge string, seq uint64, reports ...*berryv1.QuotaReport) bool {
	eng.mu.Lock()
	applied := eng.edges[edge].grantSeq
	eng.mu.Unlock()
	return eng.Observe(edge, &berryv1.ObservationBatch{Seq: seq, Instance: edge + "-1", Quota: reports,
		AppliedGrantSeq: applied, GrantInstance: eng.Instance()})
}

func report(key string, d berryv1.QuotaDimension, now time.Time, consumed, demand, balance int64) *berryv1.QuotaReport {
	return &berryv1.QuotaReport{Key: key, Dimension: d, Window: Window(d, now), Consumed: consumed, Demand: demand, Balance: balance}
}

func credits(g *berryv1.QuotaGrants) (n int64) {
	for _, x := range g.GetGrants() {
		n += x.GetCredit()
	}
	return n
}

func limits(key string, d berryv1.QuotaDimension, n int64) map[string]Limits {
	var l Limits
	l[d] = n
	return map[string]Limits{key: l}
}

// An edge that stopped asking keeps its balance, counted as taken, until it hands
// it back; then the others may have it.
func TestIdleShareFlowsBack(t *testing.T) {
	clk := newClock(t0.Add(5 * time.Second))
	eng := New(Options{Now: clk.Now})
	eng.SetLimits(limits("k", rpm, 30))
	eng.Connect("a")
	eng.Connect("b")
	now := clk.Now()
	// b holds 20 (granted earlier, say) and has no demand; a wants a lot.
	observe(eng, "b", 1, report("k", rpm, now, 0, 0, 20))
	observe(eng, "a", 1, report("k", rpm, now, 5, 50, 0))
	eng.Tick()
	if got := credits(eng.Take("a")); got != 5 { // 30 - 5 consumed - 20 held by b
		t.Fatalf("a got %d while b holds 20, want 5", got)
	}
	if u := eng.Uses("k", eng.Limits("k")); len(u) != 1 || u[0].Used != 5 || u[0].Outstanding != 25 {
		t.Fatalf("uses %+v", u)
	}
	clk.Advance(time.Second)
	ack(eng, "a", 2, report("k", rpm, clk.Now(), 5, 50, 0)) // spent what it got
	eng.Tick()
	if got := credits(eng.Take("a")); got != 0 {
		t.Fatalf("a got %d with nothing free", got)
	}
	clk.Advance(time.Second)
	r := report("k", rpm, clk.Now(), 0, 0, 0)
	r.Returned = true
	observe(eng, "b", 2, r)
	ack(eng, "a", 3, report("k", rpm, clk.Now(), 0, 50, 0))
	eng.Tick()
	if got := credits(eng.Take("a")); got != 20 {
		t.Fatalf("after b handed back its 20, a got %d, want 20", got)
	}
	if got := credits(eng.Take("b")); got != 0 {
		t.Fatalf("idle b got %d", got)
	}
}

// A new window starts from nothing consumed and nothing held, and grants at once to
// the edges that had demand; credit names its window.
func TestWindowRollover(t *testing.T) {
	clk := newClock(t0.Add(50 * time.Second))
	eng := New(Options{Now: clk.Now})
	eng.SetLimits(limits("k", rpm, 10))
	eng.Connect("a")
	w := Window(rpm, clk.Now())
	observe(eng, "a", 1, report("k", rpm, clk.Now(), 10, 8, 0))
	eng.Tick()
	if g := eng.Take("a"); credits(g) != 0 {
		t.Fatalf("granted %v past the limit", g)
	}
	clk.Advance(10 * time.Second) // the next minute
	eng.Tick()
	g := eng.Take("a")
	if credits(g) == 0 || g.GetGrants()[0].GetWindow() != w+1 {
		t.Fatalf("new window: %v", g)
	}
	if u := eng.Uses("k", eng.Limits("k")); u[0].Used != 0 || !u[0].WindowEnd.Equal(WindowEnd(rpm, w+1)) {
		t.Fatalf("new window's use %+v", u)
	}
	// A late report for the past window still counts there, then the window expires.
	observe(eng, "a", 2, &berryv1.QuotaReport{Key: "k", Dimension: rpm, Window: w, Consumed: 1})
	put, del := eng.TakeDirty()
	if len(put) != 1 || put[0].Window != w || put[0].Consumed != 11 || len(del) != 0 {
		t.Fatalf("dirty %+v %+v", put, del)
	}
	clk.Advance(3 * time.Second)
	eng.Tick()
	if _, del = eng.TakeDirty(); len(del) != 1 || del[0].Window != w {
		t.Fatalf("expired %+v", del)
	}
	// A report for a window already dropped does not bring it back.
	observe(eng, "a", 3, &berryv1.QuotaReport{Key: "k", Dimension: rpm, Window: w, Consumed: 1})
	if put, _ = eng.TakeDirty(); len(put) != 0 {
		t.Fatalf("dropped window back: %+v", put)
	}
}

// After a restart consumption comes back from the store, and nothing is granted
// until every connected edge has reported (or the warmup passed).
func TestRestart(t *testing.T) {
	clk := newClock(t0.Add(10 * time.Second))
	eng := New(Options{Now: clk.Now})
	eng.SetLimits(limits("k", rpm, 60))
	eng.Connect("a")
	observe(eng, "a", 1, report("k", rpm, clk.Now(), 40, 10, 0))
	put, _ := eng.TakeDirty()

	// The new process.
	eng = New(Options{Now: clk.Now})
	eng.SetLimits(limits("k", rpm, 60))
	eng.Restore(put)
	eng.Restore([]Counter{{Key: "k", Dim: rpm, Window: Window(rpm, clk.Now()) - 1, Consumed: 99}}) // past: ignored
	eng.Connect("a")
	eng.Connect("b")
	observe(eng, "a", 1, report("k", rpm, clk.Now(), 0, 30, 5))
	eng.Tick()
	if g := eng.Take("a"); credits(g) != 0 {
		t.Fatalf("granted %v before b reported", g)
	}
	observe(eng, "b", 1)
	eng.Tick()
	if got := credits(eng.Take("a")); got != 15 { // 60 - 40 restored - 5 held
		t.Fatalf("granted %d, want 15", got)
	}
	if u := eng.Uses("k", eng.Limits("k")); u[0].Used != 40 {
		t.Fatalf("used %d after restore, want 40", u[0].Used)
	}
	// An edge that never reports holds grants up for the warmup only.
	eng.Connect("c")
	clk.Advance(time.Second)
	ack(eng, "a", 2, report("k", rpm, clk.Now(), 15, 30, 0))
	eng.Tick()
	if g := eng.Take("a"); credits(g) != 0 {
		t.Fatalf("granted %v while c is new", g)
	}
	clk.Advance(DefaultWarmup)
	ack(eng, "a", 3, report("k", rpm, clk.Now(), 0, 30, 0))
	eng.Tick()
	if got := credits(eng.Take("a")); got != 5 {
		t.Fatalf("after the warmup: granted %d, want 5", got)
	}
	// Past the startup period a new edge holds nothing up: it was granted nothing.
	eng.SetLimits(limits("k", rpd, 1000))
	clk.Advance(startupPeriod)
	eng.Connect("d")
	ack(eng, "a", 4, report("k", rpd, clk.Now(), 0, 30, 0))
	eng.Tick()
	if got := credits(eng.Take("a")); got == 0 {
		t.Fatal("a new edge held grants up after the startup period")
	}
}

// A batch counts once: a replayed seq is ignored, one overtaken by a later one is
// not, and a restarted edge process starts its own count.
func TestIdempotentBatches(t *testing.T) {
	clk := newClock(t0)
	eng := New(Options{Now: clk.Now})
	eng.Connect("a")
	r := func() *berryv1.QuotaReport { return report("k", rpm, clk.Now(), 5, 5, 0) }
	for _, step := range []struct {
		seq  uint64
		inst string
		want bool
	}{
		{1, "p1", true}, {1, "p1", false}, {3, "p1", true}, {2, "p1", true}, {2, "p1", false}, {3, "p1", false},
		{1, "p2", true}, {200, "p1", true}, {100, "p1", false}, {0, "p1", true}, {0, "p1", true},
	} {
		if got := eng.Observe("a", &berryv1.ObservationBatch{Seq: step.seq, Instance: step.inst, Quota: []*berryv1.QuotaReport{r()}}); got != step.want {
			t.Fatalf("seq %d of %s: applied %v, want %v", step.seq, step.inst, got, step.want)
		}
	}
	put, _ := eng.TakeDirty()
	if len(put) != 1 || put[0].Consumed != 7*5 {
		t.Fatalf("consumed %+v, want 35", put)
	}
	if st := eng.Stats(); st.BatchesApplied != 7 || st.BatchesIgnored != 4 {
		t.Fatalf("stats %+v", st)
	}
	// An edge numbers its batches per stream: a new stream's seqs start over and
	// count, while each stream's replays do not; an old stream's batch that arrives
	// late still counts once.
	old, cur := eng.Connect("a"), eng.Connect("a")
	batch := func(seq uint64) *berryv1.ObservationBatch {
		return &berryv1.ObservationBatch{Seq: seq, Instance: "p1", Quota: []*berryv1.QuotaReport{r()}}
	}
	for _, step := range []struct {
		st   *Stream
		seq  uint64
		want bool
	}{
		{old, 500, true}, {cur, 1, true}, {old, 501, true}, {cur, 2, true}, {cur, 1, false}, {old, 501, false}, {cur, 3, true},
	} {
		if got := step.st.Observe(batch(step.seq)); got != step.want {
			t.Fatalf("stream %d seq %d: applied %v, want %v", step.st.n, step.seq, got, step.want)
		}
	}
}

// A reservation settled below what it took reports negative consumption.
func TestNegativeConsumed(t *testing.T) {
	clk := newClock(t0)
	eng := New(Options{Now: clk.Now})
	eng.SetLimits(limits("k", tpm, 10_000))
	eng.Connect("a")
	observe(eng, "a", 1, report("k", tpm, clk.Now(), 4000, 4000, 1000))
	observe(eng, "a", 2, report("k", tpm, clk.Now(), -1500, 0, 2500))
	u := eng.Uses("k", eng.Limits("k"))
	if u[0].Used != 2500 || u[0].Outstanding != 2500 {
		t.Fatalf("use %+v, want used 2500, outstanding 2500", u[0])
	}
	eng.Tick()
	if got := credits(eng.Take("a")); got > 10_000-2500-2500 || got == 0 {
		t.Fatalf("granted %d", got)
	}
}

// Credit in flight counts as taken until the edge confirms it, and then as its
// balance; credit computed but not sent is freed when the edge goes, credit sent is
// not.
func TestInFlightAndDisconnect(t *testing.T) {
	clk := newClock(t0)
	eng := New(Options{Now: clk.Now, Instance: "cp"})
	eng.SetLimits(limits("k", rpm, 100))
	gone := eng.Connect("a").Close
	eng.Connect("b")
	observe(eng, "a", 1, report("k", rpm, clk.Now(), 0, 10, 0))
	observe(eng, "b", 1)
	eng.Tick()
	g := eng.Take("a")
	if credits(g) != 27 { // two intervals of demand and headroom: 2 × (10 + √10)
		t.Fatalf("granted %v", g)
	}
	eng.Tick() // nothing more: what it wants is in flight
	if g2 := eng.Take("a"); credits(g2) != 0 {
		t.Fatalf("granted again %v", g2)
	}
	if u := eng.Uses("k", eng.Limits("k")); u[0].Outstanding != 27 {
		t.Fatalf("outstanding %d", u[0].Outstanding)
	}
	// The edge applied it and spent 4 before its batch: the reported balance rules.
	eng.Observe("a", &berryv1.ObservationBatch{Seq: 2, Instance: "a-1", AppliedGrantSeq: g.GetSeq(), GrantInstance: "cp",
		Quota: []*berryv1.QuotaReport{report("k", rpm, clk.Now(), 4, 10, 16)}})
	if u := eng.Uses("k", eng.Limits("k")); u[0].Used != 4 || u[0].Outstanding != 16 {
		t.Fatalf("after confirmation %+v", u[0])
	}
	// Confirmed without a report of the key: the credit moves to the balance.
	observe(eng, "a", 3, report("k", rpm, clk.Now(), 0, 30, 16))
	eng.Tick()
	g = eng.Take("a")
	eng.Observe("a", &berryv1.ObservationBatch{Seq: 4, Instance: "a-1", AppliedGrantSeq: g.GetSeq(), GrantInstance: "cp"})
	if u := eng.Uses("k", eng.Limits("k")); u[0].Outstanding != 16+credits(g) {
		t.Fatalf("confirmed without report: outstanding %d, want %d", u[0].Outstanding, 16+credits(g))
	}
	// Computed, not sent, then the edge goes: freed. Its balance stays taken.
	observe(eng, "a", 5, report("k", rpm, clk.Now(), 0, 60, 16))
	eng.Tick()
	gone()
	if u := eng.Uses("k", eng.Limits("k")); u[0].Outstanding != 16 {
		t.Fatalf("after disconnect: outstanding %d, want 16", u[0].Outstanding)
	}
	if eng.Connected() != 1 {
		t.Fatalf("connected %d", eng.Connected())
	}
	eng.Tick()
	if g := eng.Take("a"); len(g.GetGrants()) != 0 {
		t.Fatalf("a disconnected edge got %v", g)
	}
}

// Every edge with demand gets at least a unit while any is free, most demand first.
func TestAtLeastOneUnit(t *testing.T) {
	clk := newClock(t0)
	eng := New(Options{Now: clk.Now})
	eng.SetLimits(limits("k", rpm, 5))
	var ids []string
	for i := range 8 {
		id := fmt.Sprintf("e%d", i)
		ids = append(ids, id)
		eng.Connect(id)
		observe(eng, id, 1, report("k", rpm, clk.Now(), 0, int64(1+i), 0))
	}
	eng.Tick()
	var total int64
	got := map[string]int64{}
	for _, id := range ids {
		got[id] = credits(eng.Take(id))
		total += got[id]
	}
	if total != 5 || got["e7"] == 0 || got["e0"] != 0 {
		t.Fatalf("grants %v, total %d", got, total)
	}
}

// Which edges get a message: those with credit, those reporting quota lately (every
// interval), the rest every heartbeat.
func TestTickRecipients(t *testing.T) {
	clk := newClock(t0)
	eng := New(Options{Now: clk.Now})
	eng.Connect("quiet")
	eng.Connect("busy")
	// Both are heard from (without quota reports): the engine does not hold.
	observe(eng, "quiet", 1)
	observe(eng, "busy", 1)
	if got := eng.Tick(); len(got) != 2 {
		t.Fatalf("first tick: %v (both never sent)", got)
	}
	eng.Take("quiet")
	eng.Take("busy")
	observe(eng, "busy", 2, report("k", rpm, clk.Now(), 1, 1, 0))
	clk.Advance(time.Second)
	if got := eng.Tick(); len(got) != 1 || got[0] != "busy" {
		t.Fatalf("tick: %v", got)
	}
	clk.Advance(DefaultHeartbeat)
	if got := eng.Tick(); len(got) != 2 {
		t.Fatalf("heartbeat tick: %v", got)
	}
	g := eng.Take("quiet")
	if g.GetEdges() != 2 || g.GetNowUnixMs() != clk.Now().UnixMilli() || g.GetSeq() != 2 || g.GetInstance() != eng.Instance() {
		t.Fatalf("heartbeat %v", g)
	}
}

// Below the limit the leases follow the demand: few requests are refused although
// no edge holds more than about two intervals of its own demand.
//
// How soon an edge hands back idle credit matters for sparse keys: after handing it
// back an edge refuses the key's next request (its one request on credit is spent),
// and asks again. Both are logged; the bound holds for the longer delay.
func TestFleetBelowLimit(t *testing.T) {
	for _, returnAfter := range []time.Duration{5 * time.Second, 30 * time.Second} {
		const limit, minutes = 60, 6
		shares := []float64{0.8, 0.1, 0.1}
		s := newSim(t0, len(shares), "alice", rpm, limit)
		for i, sh := range shares {
			s.rates[i] = 0.75 * limit / 60.0 * sh
			s.edges[i].returnAfter = returnAfter
		}
		s.run(minutes * time.Minute)
		var admitted, refused int64
		for w := Window(rpm, t0); w < Window(rpm, t0)+minutes; w++ {
			admitted += s.admitted(w)
		}
		for _, e := range s.edges {
			refused += e.refused
		}
		t.Logf("demand at 75%% of the limit, idle credit handed back after %v: admitted %d, refused %d over %d minutes",
			returnAfter, admitted, refused, minutes)
		if returnAfter >= 30*time.Second && refused*20 > admitted { // under 5%
			t.Errorf("refused %d of %d below the limit", refused, admitted+refused)
		}
	}
}

// An edge whose key has sparse traffic keeps a unit standing by after it hands back
// what it held, so its next request finds credit; an edge that never asked gets none.
func TestSparseKeyStandsBy(t *testing.T) {
	clk := newClock(t0)
	eng := New(Options{Now: clk.Now})
	eng.SetLimits(limits("k", rpd, 1000))
	eng.Connect("a")
	eng.Connect("b")
	ack(eng, "a", 1, report("k", rpd, clk.Now(), 1, 1, 0))
	ack(eng, "b", 1, report("k", rpd, clk.Now(), 0, 0, 0))
	seq := uint64(2)
	for range 6 { // idle: the fast estimate runs out
		eng.Tick()
		eng.Take("a")
		eng.Take("b")
		clk.Advance(time.Second)
		ack(eng, "a", seq)
		seq++
	}
	r := report("k", rpd, clk.Now(), 0, 0, 0)
	r.Returned = true
	ack(eng, "a", seq, r)
	eng.Tick()
	if got := credits(eng.Take("a")); got < 1 {
		t.Fatalf("sparse edge got %d after handing back its credit", got)
	}
	if got := credits(eng.Take("b")); got != 0 {
		t.Fatalf("an edge without demand got %d", got)
	}
}

// held reports whether g says Hold and carries no credit.
func held(g *berryv1.QuotaGrants) bool { return g.GetHold() && len(g.GetGrants()) == 0 }

// A restarted engine holds credit back until every edge the previous process saw
// today has reported: they admitted requests while no control plane ran (here the
// limit's rest), which only their reports tell. Batches that arrive meanwhile count,
// the grants say Hold and count the edges still away, and every connected edge gets
// them every interval.
func TestRestartAwaitsEdges(t *testing.T) {
	clk := newClock(t0.Add(10 * time.Second))
	eng := New(Options{Now: clk.Now})
	eng.SetLimits(limits("k", rpd, 40))
	ids := []string{"a", "b", "c", "d"}
	for _, id := range ids {
		eng.Connect(id)
		observe(eng, id, 1, report("k", rpd, clk.Now(), 4, 4, 0))
	}
	eng.Tick()
	put, _ := eng.TakeDirty()
	seen, changed := eng.TakeEdges()
	if !changed || len(seen) != 4 || seen[0] != (SeenEdge{"a", Window(rpd, clk.Now())}) || seen[3].ID != "d" {
		t.Fatalf("edges to store: %v, %v", seen, changed)
	}
	if _, changed := eng.TakeEdges(); changed {
		t.Fatal("edges to store again, unchanged")
	}

	// 12 s later, the new process; a and b reconnect first.
	clk.Advance(12 * time.Second)
	eng = New(Options{Now: clk.Now})
	eng.SetLimits(limits("k", rpd, 40))
	eng.Restore(put)
	eng.RestoreEdges(append(seen, SeenEdge{"old", Window(rpd, clk.Now()) - 1})) // yesterday's: not awaited
	if h, away := eng.Holding(); !h || len(away) != 4 {
		t.Fatalf("after restore: holding %v, awaited %v", h, away)
	}
	eng.Connect("a")
	eng.Connect("b")
	seq := map[string]uint64{}
	send := func(id string, consumed, demand int64) {
		seq[id]++
		observe(eng, id, seq[id], report("k", rpd, clk.Now(), consumed, demand, 0))
	}
	send("a", 6, 10)
	send("b", 6, 10)
	for range 3 {
		clk.Advance(time.Second)
		if got := eng.Tick(); len(got) != 2 {
			t.Fatalf("held tick: recipients %v, want both connected", got)
		}
		for _, id := range []string{"a", "b"} {
			if g := eng.Take(id); !held(g) || g.GetEdges() != 4 {
				t.Fatalf("%s got %v while c and d have not reported", id, g)
			}
		}
		send("a", 0, 10)
	}
	if u := eng.Uses("k", eng.Limits("k")); u[0].Used != 28 {
		t.Fatalf("used %d while holding, want 16 restored + 12 reported", u[0].Used)
	}
	eng.Connect("c")
	send("c", 6, 10)
	clk.Advance(time.Second)
	eng.Tick()
	if g := eng.Take("c"); !held(g) || g.GetEdges() != 4 {
		t.Fatalf("c got %v while d has not reported", g)
	}
	// d connects: connected, not yet heard from, it still holds credit back.
	eng.Connect("d")
	clk.Advance(time.Second)
	eng.Tick()
	if g := eng.Take("d"); !held(g) || g.GetEdges() != 4 {
		t.Fatalf("d got %v before it reported", g)
	}
	send("d", 4, 10)
	clk.Advance(time.Second)
	if got := eng.Tick(); len(got) != 4 {
		t.Fatalf("the tick that ends the hold: recipients %v, want all", got)
	}
	if h, away := eng.Holding(); h || len(away) != 0 {
		t.Fatalf("after every edge reported: holding %v, awaited %v", h, away)
	}
	var total int64
	for _, id := range ids {
		g := eng.Take(id)
		if g.GetHold() || g.GetEdges() != 4 {
			t.Fatalf("%s got %v after the hold", id, g)
		}
		total += credits(g)
	}
	if u := eng.Uses("k", eng.Limits("k")); u[0].Used != 38 || total != 2 {
		t.Fatalf("after the hold: used %d, granted %d; want 38 and 2", u[0].Used, total)
	}
	// The new process stores the restored edges too (old is gone), and a second
	// restart awaits them again.
	seen2, changed := eng.TakeEdges()
	if !changed || len(seen2) != 4 {
		t.Fatalf("edges to store after restart: %v, %v", seen2, changed)
	}
}

// An edge that stays away holds credit back for the hold cap at most; what it
// reports later counts.
func TestHoldCap(t *testing.T) {
	clk := newClock(t0)
	eng := New(Options{Now: clk.Now, HoldCap: 10 * time.Second})
	eng.SetLimits(limits("k", rpd, 100))
	eng.Restore([]Counter{{Key: "k", Dim: rpd, Window: Window(rpd, clk.Now()), Consumed: 20}})
	eng.RestoreEdges([]SeenEdge{{"a", Window(rpd, clk.Now())}, {"gone", Window(rpd, clk.Now())}})
	eng.Connect("a")
	observe(eng, "a", 1, report("k", rpd, clk.Now(), 5, 10, 0))
	for range 9 {
		clk.Advance(time.Second)
		if got := eng.Tick(); len(got) != 1 {
			t.Fatalf("held tick: recipients %v", got)
		}
		if g := eng.Take("a"); !held(g) || g.GetEdges() != 2 {
			t.Fatalf("a got %v while gone has not reported", g)
		}
	}
	clk.Advance(time.Second)
	eng.Tick()
	g := eng.Take("a")
	if g.GetHold() || g.GetEdges() != 1 || credits(g) == 0 {
		t.Fatalf("after the cap a got %v", g)
	}
	if h, away := eng.Holding(); h || len(away) != 1 || away[0] != "gone" {
		t.Fatalf("after the cap: holding %v, awaited %v", h, away)
	}
	// It comes back late: its consumption counts, and it holds nothing up.
	eng.Connect("gone")
	observe(eng, "gone", 1, report("k", rpd, clk.Now(), 30, 0, 0))
	if u := eng.Uses("k", eng.Limits("k")); u[0].Used != 55 {
		t.Fatalf("used %d, want 20 + 5 + 30", u[0].Used)
	}
	eng.Tick()
	if g := eng.Take("a"); g.GetHold() {
		t.Fatalf("held again: %v", g)
	}
}

// An edge connecting in the startup period that has not reported holds credit back
// for the warmup, as before; credit computed but not sent before then is freed, so
// that a held QuotaGrants carries none.
func TestWarmupHolds(t *testing.T) {
	clk := newClock(t0)
	eng := New(Options{Now: clk.Now})
	eng.SetLimits(limits("k", rpd, 100))
	eng.Connect("a")
	observe(eng, "a", 1, report("k", rpd, clk.Now(), 0, 10, 0))
	if got := eng.Tick(); len(got) != 1 {
		t.Fatalf("recipients %v", got)
	}
	eng.Connect("b") // before a's grants were taken
	clk.Advance(time.Second)
	eng.Tick()
	if g := eng.Take("a"); !held(g) || g.GetEdges() != 2 {
		t.Fatalf("a got %v while b is unknown", g)
	}
	if u := eng.Uses("k", eng.Limits("k")); u[0].Outstanding != 0 {
		t.Fatalf("outstanding %d: the credit not sent was not freed", u[0].Outstanding)
	}
	clk.Advance(DefaultWarmup)
	eng.Tick()
	if g := eng.Take("a"); g.GetHold() || credits(g) == 0 {
		t.Fatalf("after the warmup a got %v", g)
	}
}
