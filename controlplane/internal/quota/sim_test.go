package quota

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"time"

	berryv1 "github.com/berry-gateway/berry/pkg/api/berry/v1"
)

// clock is a fake clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock(t time.Time) *clock { return &clock{t: t} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// simKey is one key × dimension × window at a simulated edge.
type simKey struct {
	key    string
	dim    berryv1.QuotaDimension
	window int64
}

// simState is what a simulated edge keeps of one simKey.
type simState struct {
	balance            int64
	consumed, demand   int64 // since the last report
	granted            bool  // has held credit in this window (else: first-request debt)
	returned, reported bool
	idleSince          time.Time
}

// simEdge follows the edge side of the contract: it admits against the credit it
// holds (a first request in a window without any grant on debt), reports once per
// batch, applies each QuotaGrants once, drops credit of past windows, and hands back
// a balance it has had no demand for during returnAfter.
type simEdge struct {
	id, instance  string
	seq           uint64
	appliedGrant  uint64
	grantInstance string
	state         map[simKey]*simState
	admitted      map[simKey]int64
	refused       int64
	returnAfter   time.Duration
}

func newSimEdge(id string) *simEdge {
	return &simEdge{id: id, instance: id + "-proc", state: map[simKey]*simState{}, admitted: map[simKey]int64{},
		returnAfter: 5 * time.Second}
}

func (s *simEdge) st(k simKey) *simState {
	x := s.state[k]
	if x == nil {
		x = &simState{}
		s.state[k] = x
	}
	return x
}

// request tries to admit one request of cost units for key on dimension d.
func (s *simEdge) request(now time.Time, key string, d berryv1.QuotaDimension, cost int64) bool {
	k := simKey{key, d, Window(d, now)}
	x := s.st(k)
	x.demand += cost
	x.idleSince = now
	x.returned = false
	switch {
	case x.balance >= cost:
	case !x.granted && x.balance == 0:
		x.granted = true // the documented first-request debt
	default:
		s.refused++
		return false
	}
	x.balance -= cost
	x.consumed += cost
	s.admitted[k] += cost
	return true
}

// batch builds the next observation batch.
func (s *simEdge) batch(now time.Time) *berryv1.ObservationBatch {
	s.seq++
	b := &berryv1.ObservationBatch{Seq: s.seq, Instance: s.instance, AppliedGrantSeq: s.appliedGrant, GrantInstance: s.grantInstance}
	keys := make([]simKey, 0, len(s.state))
	for k := range s.state {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b simKey) int { return cmpKey(a, b) })
	for _, k := range keys {
		x := s.state[k]
		if k.window != Window(k.dim, now) {
			delete(s.state, k) // credit is only valid in its window
			continue
		}
		r := &berryv1.QuotaReport{Key: k.key, Dimension: k.dim, Window: k.window,
			Consumed: x.consumed, Demand: x.demand, Balance: x.balance}
		if x.balance > 0 && !x.returned && !x.idleSince.IsZero() && now.Sub(x.idleSince) >= s.returnAfter {
			r.Returned, r.Balance = true, x.balance
			x.balance, x.returned = 0, true
		}
		changed := x.consumed != 0 || x.demand != 0 || r.Returned || !x.reported
		x.consumed, x.demand, x.reported = 0, 0, true
		if changed || x.balance != 0 {
			b.Quota = append(b.Quota, r)
		}
	}
	return b
}

func cmpKey(a, b simKey) int {
	if a.key != b.key {
		if a.key < b.key {
			return -1
		}
		return 1
	}
	if a.dim != b.dim {
		return int(a.dim) - int(b.dim)
	}
	return int(a.window - b.window)
}

// apply applies one QuotaGrants, once.
func (s *simEdge) apply(now time.Time, g *berryv1.QuotaGrants) {
	if g.GetInstance() == s.grantInstance && g.GetSeq() <= s.appliedGrant {
		return
	}
	s.grantInstance, s.appliedGrant = g.GetInstance(), g.GetSeq()
	for _, gr := range g.GetGrants() {
		k := simKey{gr.GetKey(), gr.GetDimension(), gr.GetWindow()}
		if k.window != Window(k.dim, now) {
			continue // a past window's credit is worthless
		}
		x := s.st(k)
		x.balance += gr.GetCredit()
		x.granted = true
		x.returned = false
	}
}

// sim runs edges against an engine in steps of step: requests arrive at each edge
// at its rate, the engine ticks every interval, batches leave each edge every
// interval at its own phase, and messages take latency to arrive.
type sim struct {
	clk      *clock
	eng      *Engine
	edges    []*simEdge
	rates    []float64 // requests per second per edge
	key      string
	dim      berryv1.QuotaDimension
	rng      *rand.Rand
	latency  time.Duration
	step     time.Duration
	interval time.Duration
	inbox    []delivery
	elapsed  time.Duration
	discon   map[int]func()
}

type delivery struct {
	at    time.Time
	edge  int
	grant *berryv1.QuotaGrants
	batch *berryv1.ObservationBatch
}

func newSim(start time.Time, n int, key string, dim berryv1.QuotaDimension, limit int64) *sim {
	clk := newClock(start)
	s := &sim{clk: clk, eng: New(Options{Now: clk.Now, Instance: "cp"}), key: key, dim: dim,
		rng: rand.New(rand.NewPCG(1, 2)), latency: 30 * time.Millisecond, step: 10 * time.Millisecond,
		interval: time.Second, discon: map[int]func(){}}
	var l Limits
	l[dim] = limit
	s.eng.SetLimits(map[string]Limits{key: l})
	for i := range n {
		s.edges = append(s.edges, newSimEdge(fmt.Sprintf("e%d", i)))
		s.rates = append(s.rates, 0)
		s.discon[i] = s.eng.Connect(s.edges[i].id).Close
	}
	return s
}

// run advances the simulation by d.
func (s *sim) run(d time.Duration) {
	for end := s.elapsed + d; s.elapsed < end; s.elapsed += s.step {
		now := s.clk.Now()
		// Deliveries due.
		k := 0
		for _, m := range s.inbox {
			if m.at.After(now) {
				s.inbox[k] = m
				k++
				continue
			}
			if m.grant != nil {
				s.edges[m.edge].apply(now, m.grant)
			} else {
				s.eng.Observe(s.edges[m.edge].id, m.batch)
			}
		}
		s.inbox = s.inbox[:k]
		// Requests: Bernoulli per step at each edge's rate.
		for i, e := range s.edges {
			p := s.rates[i] * s.step.Seconds()
			for p > 0 {
				if s.rng.Float64() < min(p, 1) {
					e.request(now, s.key, s.dim, 1)
				}
				p--
			}
		}
		// Batches, each edge at its own phase.
		for i, e := range s.edges {
			if _, gone := s.discon[i]; !gone {
				continue
			}
			phase := time.Duration(i+1) * 130 * time.Millisecond % s.interval
			if (s.elapsed-phase)%s.interval == 0 {
				s.inbox = append(s.inbox, delivery{at: now.Add(s.latency), edge: i, batch: e.batch(now)})
			}
		}
		// The control plane's tick.
		if s.elapsed%s.interval == 0 {
			for _, id := range s.eng.Tick() {
				i := slices.IndexFunc(s.edges, func(e *simEdge) bool { return e.id == id })
				s.inbox = append(s.inbox, delivery{at: now.Add(s.latency), edge: i, grant: s.eng.Take(id)})
			}
		}
		s.clk.Advance(s.step)
	}
}

// admitted sums what the edges admitted in window w.
func (s *sim) admitted(w int64) int64 {
	var n int64
	for _, e := range s.edges {
		n += e.admitted[simKey{s.key, s.dim, w}]
	}
	return n
}
