package quota

import (
	"cmp"
	"crypto/rand"
	"encoding/hex"
	"math"
	"slices"
	"sync"
	"time"

	berryv1 "github.com/berry-gateway/berry/pkg/api/berry/v1"
)

// Defaults of Options.
const (
	// DefaultInterval is how often credit is computed and pushed.
	DefaultInterval = time.Second
	// DefaultWarmup bounds how long an edge that connects while the engine starts,
	// and that it has not heard from, holds up every grant: what it holds (granted by
	// the previous control-plane process) and what it consumed while no control plane
	// ran are unknown until it reports. This covers the edges that are connected;
	// those the previous process saw and that have not reconnected yet are awaited
	// for up to DefaultHoldCap (RestoreEdges).
	DefaultWarmup = 3 * time.Second
	// DefaultHoldCap bounds how long after the engine starts it holds every grant
	// while an edge that the previous process saw in the current day (RestoreEdges)
	// has not reported: such an edge may hold credit granted by that process, and it
	// admitted requests by its disconnected rule while no control plane ran, which
	// the store does not know. An edge reconnects with a backoff, 8 to 16 s after an
	// outage of a dozen seconds; one that stays away longer holds nothing up, and its
	// consumption counts once it reports, possibly after the engine granted it to
	// others (the fleet may then exceed the limit by what it admitted unseen).
	DefaultHoldCap = time.Minute
	// startupPeriod is how long after the engine starts a connecting edge it has not
	// heard from may hold grants up (for the warmup): the edges of the previous
	// process reconnect then, holding credit and consumption the engine does not know
	// yet. An edge connecting later is new or was cut off, and holds at most the
	// little it was granted; an edge the previous process saw is awaited by its id
	// (DefaultHoldCap) whenever it connects.
	startupPeriod = 10 * DefaultWarmup
	// DefaultHeartbeat is how often an edge that reports no quota still gets a
	// (possibly empty) QuotaGrants, so that it learns the clock and the edge count.
	DefaultHeartbeat = 5 * time.Second
	// activeFor is how long after an edge's last quota report it gets a QuotaGrants
	// every interval, empty or not.
	activeFor = time.Minute
	// wantIntervals is how many intervals of an edge's demand it may hold: with the
	// Poisson headroom of √demand per interval, so that an edge with a few requests a
	// second rides out a burst until its next grant (a grant is a batch and a tick away,
	// up to two intervals).
	wantIntervals = 2
	// demandAlpha weighs the newest interval in an edge's demand estimate (EWMA),
	// which splits the free credit and sets what an edge may hold.
	demandAlpha = 0.5
	// recentAlpha weighs it in the slower estimate that keeps one unit at an edge
	// whose key has sparse traffic (a request every few seconds), so that its next
	// request finds credit even after the edge handed back what it held.
	recentAlpha = 0.1
	// minDemand is the estimate below which an edge counts as idle (no grants).
	minDemand = 0.05
	// replayWindow is how many batch seqs below the highest one are remembered, so a
	// batch overtaken by a later one (a reconnect's overlapping streams) still counts.
	replayWindow = 64
	// maxInstances bounds the edge processes remembered per edge id.
	maxInstances = 4
	// edgeExpiry forgets an edge that has been gone this long and holds nothing.
	edgeExpiry = time.Hour
	// maxSeenEdges bounds the edge ids seen in the current day that are kept for the
	// store (TakeEdges); maxSeenID the length of an id kept.
	maxSeenEdges = 4096
	maxSeenID    = 512
)

// seenDim numbers the windows in which edges are seen (TakeEdges): days.
const seenDim = berryv1.QuotaDimension_QUOTA_DIMENSION_REQUESTS_DAY

// Options tunes New. The zero value is usable.
type Options struct {
	// Now is the clock (default time.Now). Windows are numbered by it.
	Now func() time.Time
	// Interval is the grant interval (default DefaultInterval); it sets the grace
	// after a window's end during which late reports still count.
	Interval time.Duration
	// Warmup: see DefaultWarmup.
	Warmup time.Duration
	// Heartbeat: see DefaultHeartbeat.
	Heartbeat time.Duration
	// HoldCap: see DefaultHoldCap.
	HoldCap time.Duration
	// Instance names this engine's grants to edges (default: random).
	Instance string
}

// Counter is what the fleet consumed of one key's limit in one window: what the store
// keeps.
type Counter struct {
	Key      string
	Dim      berryv1.QuotaDimension
	Window   int64
	Consumed int64
}

// SeenEdge is an edge id and the day (the window of QUOTA_DIMENSION_REQUESTS_DAY) in
// which the engine last saw it connected or reporting: what the store keeps, so that
// a restarted engine waits for that edge's report before it grants (RestoreEdges).
type SeenEdge struct {
	ID  string
	Day int64
}

// Use is one key's limit in its current window, for GetQuotas.
type Use struct {
	Dim   berryv1.QuotaDimension
	Limit int64
	// Used is what the fleet consumed; Outstanding the credit edges hold (positive
	// balances), credit in flight to them and credit computed but not yet sent.
	Used, Outstanding int64
	WindowEnd         time.Time
}

// Stats are counts since the engine started.
type Stats struct {
	BatchesApplied, BatchesIgnored uint64 // ignored: a seq already applied
	Grants                         uint64 // QuotaGrant entries computed
	Credit                         uint64 // units of credit computed
	Messages                       uint64 // QuotaGrants messages taken
}

// Engine is the fleet's quota state. It is safe for concurrent use; every method
// holds one mutex briefly, none blocks on anything else.
type Engine struct {
	now       func() time.Time
	interval  time.Duration
	warmup    time.Duration
	started   time.Time
	heartbeat time.Duration
	holdCap   time.Duration
	instance  string

	mu        sync.Mutex
	limits    map[string]Limits
	counters  map[ckey]*counter
	edges     map[string]*edge
	connected int
	dirty     []*counter
	expired   []Counter // dropped windows, to delete from the store
	lastPrune time.Time
	streamSeq uint64
	stats     Stats
	scratch   []*share
	// seen is the day each edge id was last connected or reporting, for the store
	// (TakeEdges): edges seen in the current day may hold credit or have consumed in
	// current windows. seenDirty: it changed since the last TakeEdges.
	seen      map[string]int64
	seenDay   int64
	seenDirty bool
	// awaited are the edges the previous process saw in the current day
	// (RestoreEdges) that have not reported since this engine started.
	awaited map[string]struct{}
	// hold: the last Tick held credit back (holding); holdAway is how many awaited
	// edges were not connected then, counted in QuotaGrants.edges while holding.
	hold     bool
	holdAway int
}

type ckey struct {
	key    string
	dim    berryv1.QuotaDimension
	window int64
}

// counter is one key × dimension × window.
type counter struct {
	ckey
	consumed int64
	dirty    bool // consumed changed since the last TakeDirty
	rolled   bool // its demand was carried into the next window
	dead     bool // expired: dropped from the engine
	shares   map[*edge]*share
	list     []*share // the same shares, in creation order
}

// share is one edge's part of a counter.
type share struct {
	e *edge
	c *counter
	// balance is the edge's credit as it last reported it, plus the grants it has
	// confirmed since (negative: debt, a request admitted before any grant).
	balance int64
	// demandAcc is the demand reported since the last tick; demand the estimate per
	// interval, recent the slower one.
	demandAcc int64
	demand    float64
	recent    float64
	// unsent is credit computed but not yet taken for a message; inflight the grants
	// sent that the edge has not confirmed (inflightSum their total).
	unsent      int64
	inflight    []grant
	inflightSum int64
	queued      bool // in e.pending
	listed      bool // in e.inflight
	credit      int64
	need        int64
}

type grant struct {
	seq    uint64
	credit int64
}

// edge is one edge id.
type edge struct {
	id          string
	streams     int
	connectedAt time.Time
	lastSeen    time.Time
	// known: a batch of this edge was applied since the engine started, so its
	// balances are known.
	known     bool
	seqs      []replay // per edge process (instance) and stream
	grantSeq  uint64   // the seq of the last QuotaGrants taken for it
	confirmed uint64   // the highest applied_grant_seq it reported
	lastQuota time.Time
	lastSent  time.Time
	pending   []*share        // shares with unsent credit
	inflight  []*share        // shares with grants it has not confirmed
	shares    map[ckey]*share // its shares of live counters
}

// replay remembers which batches of one edge process (instance) on one stream were
// applied: the highest seq and a bitmap of the replayWindow seqs below it. An edge
// numbers its batches per stream; one that numbers them per process is served as well.
type replay struct {
	instance string
	stream   uint64
	top      uint64
	seen     uint64 // bit i: top-1-i was applied
	used     time.Time
}

// New returns an empty engine.
func New(opts Options) *Engine {
	e := &Engine{
		now: opts.Now, interval: cmp.Or(opts.Interval, DefaultInterval),
		warmup: cmp.Or(opts.Warmup, DefaultWarmup), heartbeat: cmp.Or(opts.Heartbeat, DefaultHeartbeat),
		holdCap: cmp.Or(opts.HoldCap, DefaultHoldCap), instance: opts.Instance,
		limits: map[string]Limits{}, counters: map[ckey]*counter{}, edges: map[string]*edge{},
		seen: map[string]int64{}, awaited: map[string]struct{}{},
	}
	if e.now == nil {
		e.now = time.Now
	}
	e.started = e.now()
	e.seenDay = Window(seenDim, e.started)
	if e.instance == "" {
		var b [8]byte
		_, _ = rand.Read(b[:]) // crypto/rand.Read never fails on supported platforms
		e.instance = hex.EncodeToString(b[:])
	}
	return e
}

// Instance is what the engine's QuotaGrants name as their instance.
func (e *Engine) Instance() string { return e.instance }

// SetLimits replaces every key's limits (the current config's).
func (e *Engine) SetLimits(l map[string]Limits) {
	e.mu.Lock()
	e.limits = l
	e.mu.Unlock()
}

// Limits returns one key's limits.
func (e *Engine) Limits(key string) Limits {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.limits[key]
}

// Restore adds what the store kept to the counters: after a restart, the fleet's
// consumption of the current windows. It is added, so consumption reported before
// the restore is kept too.
func (e *Engine) Restore(cs []Counter) {
	now := e.now()
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, c := range cs {
		if !Valid(c.Dim) || c.Window < Window(c.Dim, now) {
			continue
		}
		e.counter(ckey{c.Key, c.Dim, c.Window}).consumed += c.Consumed
	}
}

// RestoreEdges takes back the edges the previous process saw (TakeEdges, as the store
// kept them). Those seen in the current day may hold credit that process granted and
// have admitted requests while no control plane ran: until each has reported a batch,
// or DefaultHoldCap has passed since the engine started, nothing is granted (and
// QuotaGrants say Hold, so edges apply their disconnected rule). They are kept for
// the store as well, so that a second restart waits for them too.
func (e *Engine) RestoreEdges(es []SeenEdge) {
	now := e.now()
	e.mu.Lock()
	defer e.mu.Unlock()
	day := Window(seenDim, now)
	for _, s := range es {
		if s.Day < day || s.ID == "" || len(s.ID) > maxSeenID {
			e.seenDirty = true // dropped: the stored set changes
			continue
		}
		if _, ok := e.seen[s.ID]; !ok {
			if !e.makeRoom() {
				continue
			}
			e.seen[s.ID] = day
		}
		if ed := e.edges[s.ID]; ed != nil && ed.known {
			continue // reported already
		}
		e.awaited[s.ID] = struct{}{}
	}
	if len(e.awaited) > 0 && now.Sub(e.started) < e.holdCap {
		e.hold = true
	}
}

// see records that edge id is connected or reporting now.
func (e *Engine) see(id string, now time.Time) {
	day := Window(seenDim, now)
	old, ok := e.seen[id]
	switch {
	case ok && old == day:
		return
	case !ok && (len(id) > maxSeenID || !e.makeRoom()):
		return
	}
	e.seen[id] = day
	e.seenDirty = true
}

// makeRoom reports whether another edge id may be seen, forgetting a disconnected one
// seen earliest when there are maxSeenEdges already.
func (e *Engine) makeRoom() bool {
	if len(e.seen) < maxSeenEdges {
		return true
	}
	victim, vday := "", int64(math.MaxInt64)
	for id, d := range e.seen {
		if ed := e.edges[id]; (ed == nil || ed.streams == 0) && d < vday {
			victim, vday = id, d
		}
	}
	if victim == "" {
		return false
	}
	delete(e.seen, victim)
	delete(e.awaited, victim)
	e.seenDirty = true
	return true
}

// Stream is one Sync stream of an edge: its batches are numbered on their own.
type Stream struct {
	e    *Engine
	id   string
	n    uint64
	once sync.Once
}

// Connect records an edge's stream opening; Close records its closing. An edge may
// have overlapping streams while it reconnects.
func (e *Engine) Connect(id string) *Stream {
	now := e.now()
	e.mu.Lock()
	defer e.mu.Unlock()
	ed := e.edge(id)
	if ed.streams == 0 {
		e.connected++
		ed.connectedAt = now
	}
	ed.streams++
	ed.lastSeen = now
	e.see(id, now)
	e.streamSeq++
	return &Stream{e: e, id: id, n: e.streamSeq}
}

// Close records the stream's end (once).
func (s *Stream) Close() {
	s.once.Do(func() { s.e.disconnect(s.id) })
}

// Observe is Engine.Observe for a batch received on this stream.
func (s *Stream) Observe(b *berryv1.ObservationBatch) bool { return s.e.observe(s.id, s.n, b) }

func (e *Engine) disconnect(id string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	ed := e.edges[id] // an edge with a stream open is never pruned
	now := e.now()
	ed.streams--
	ed.lastSeen = now
	e.see(id, now)
	if ed.streams > 0 {
		return
	}
	e.connected--
	// Credit computed but never sent is not the edge's: free it. What was sent stays
	// counted (the edge may still spend it) until the window ends.
	for _, s := range ed.pending {
		s.unsent, s.queued = 0, false
	}
	clear(ed.pending)
	ed.pending = ed.pending[:0]
}

func (e *Engine) edge(id string) *edge {
	ed := e.edges[id]
	if ed == nil {
		ed = &edge{id: id, shares: map[ckey]*share{}}
		e.edges[id] = ed
	}
	return ed
}

func (e *Engine) counter(k ckey) *counter {
	c := e.counters[k]
	if c == nil {
		c = &counter{ckey: k, shares: map[*edge]*share{}}
		e.counters[k] = c
	}
	return c
}

func (c *counter) share(ed *edge) *share {
	s := c.shares[ed]
	if s == nil {
		s = &share{e: ed, c: c}
		c.shares[ed] = s
		c.list = append(c.list, s)
		ed.shares[c.ckey] = s
	}
	return s
}

func (e *Engine) markDirty(c *counter) {
	if !c.dirty {
		c.dirty = true
		e.dirty = append(e.dirty, c)
	}
}

// Observe applies one observation batch of an edge: its quota reports and its
// confirmation of the grants it applied. It reports whether the batch is new: a
// batch whose seq was already applied for the edge id, process (instance) and stream
// is ignored, and its usage must not be counted either. Seq 0 (an edge that does not
// number its batches) is always applied. Batches given here rather than to a Stream
// count as one stream's.
func (e *Engine) Observe(id string, b *berryv1.ObservationBatch) bool { return e.observe(id, 0, b) }

func (e *Engine) observe(id string, stream uint64, b *berryv1.ObservationBatch) bool {
	now := e.now()
	e.mu.Lock()
	defer e.mu.Unlock()
	ed := e.edge(id)
	if !ed.accept(b.GetInstance(), stream, b.GetSeq(), now) {
		e.stats.BatchesIgnored++
		return false
	}
	e.stats.BatchesApplied++
	ed.known, ed.lastSeen = true, now
	// Reported: what it holds and consumed is known from now on, whether or not
	// the engine is holding (the batch counts in full either way).
	delete(e.awaited, id)
	e.see(id, now)
	if b.GetGrantInstance() == e.instance && b.GetAppliedGrantSeq() > ed.confirmed {
		ed.confirm(b.GetAppliedGrantSeq())
	}
	for _, r := range b.GetQuota() {
		e.report(ed, r, now)
	}
	return true
}

// accept reports whether the batch seq of process instance on stream is new, and
// records it.
func (ed *edge) accept(instance string, stream, seq uint64, now time.Time) bool {
	if seq == 0 {
		return true
	}
	i := slices.IndexFunc(ed.seqs, func(r replay) bool { return r.instance == instance && r.stream == stream })
	if i < 0 {
		if len(ed.seqs) >= maxInstances {
			oldest := 0
			for j := range ed.seqs {
				if ed.seqs[j].used.Before(ed.seqs[oldest].used) {
					oldest = j
				}
			}
			ed.seqs = slices.Delete(ed.seqs, oldest, oldest+1)
		}
		ed.seqs = append(ed.seqs, replay{instance: instance, stream: stream, top: seq, used: now})
		return true
	}
	r := &ed.seqs[i]
	r.used = now
	switch {
	case seq > r.top:
		shift := seq - r.top
		if shift > replayWindow {
			r.seen = 0
		} else {
			r.seen = r.seen<<shift | 1<<(shift-1)
		}
		r.top = seq
		return true
	case seq == r.top:
		return false
	}
	back := r.top - seq - 1 // bit index
	if back >= replayWindow || r.seen&(1<<back) != 0 {
		return false
	}
	r.seen |= 1 << back
	return true
}

// confirm moves the grants up to seq n from in flight to the edge's balance: it
// applied them.
func (ed *edge) confirm(n uint64) {
	ed.confirmed = n
	j := 0
	for _, s := range ed.inflight {
		if s.c.dead {
			s.listed = false
			continue
		}
		k := 0
		for _, g := range s.inflight {
			if g.seq <= n {
				s.balance += g.credit
				s.inflightSum -= g.credit
			} else {
				s.inflight[k] = g
				k++
			}
		}
		s.inflight = s.inflight[:k]
		if k == 0 {
			s.listed = false
			continue
		}
		ed.inflight[j] = s
		j++
	}
	clear(ed.inflight[j:])
	ed.inflight = ed.inflight[:j]
}

// report applies one QuotaReport. Reports for a window not near the current one are
// dropped, and a window already dropped is not brought back.
func (e *Engine) report(ed *edge, r *berryv1.QuotaReport, now time.Time) {
	d := r.GetDimension()
	if !Valid(d) || r.GetKey() == "" {
		return
	}
	cur, w := Window(d, now), r.GetWindow()
	if w > cur+1 || w < cur-1 {
		return
	}
	k := ckey{r.GetKey(), d, w}
	s := ed.shares[k]
	if s == nil {
		c := e.counters[k]
		if c == nil {
			if w < cur {
				return
			}
			c = e.counter(k)
		}
		s = c.share(ed)
	}
	if c := s.c; r.GetConsumed() != 0 {
		c.consumed += r.GetConsumed()
		e.markDirty(c)
	}
	if r.GetDemand() > 0 {
		s.demandAcc += r.GetDemand()
	}
	if r.GetReturned() {
		s.balance = 0
	} else {
		s.balance = r.GetBalance()
	}
	ed.lastQuota = now
}

// Tick runs one interval: it updates the demand estimates, rolls windows over, and
// computes credit for every key and dimension with demand in its current window. It
// returns the connected edges to send a QuotaGrants to now (Take): those with credit,
// those that reported quota lately, and the others every heartbeat. While the engine
// holds credit back (see holding) it computes none, and every connected edge gets a
// QuotaGrants that says Hold every interval, and once more when the hold ends.
func (e *Engine) Tick() []string {
	now := e.now()
	e.mu.Lock()
	defer e.mu.Unlock()
	wasHeld := e.hold
	blocked := e.holding(now)
	e.hold, e.holdAway = blocked, 0
	if blocked {
		for id := range e.awaited {
			if ed := e.edges[id]; ed == nil || ed.streams == 0 {
				e.holdAway++
			}
		}
	}
	grace := 2 * e.interval
	var curs [numDims]int64
	for _, d := range Dimensions {
		curs[d] = Window(d, now)
	}
	// Past windows first: rolling one over may start the next, which this tick
	// grants for.
	for _, c := range e.counters {
		if cur := curs[c.dim]; c.window < cur {
			if !c.rolled {
				e.rollover(c, cur)
			}
			if !now.Before(WindowEnd(c.dim, c.window).Add(grace)) {
				e.expire(c)
			}
		}
	}
	for _, c := range e.counters {
		if c.window != curs[c.dim] || !c.decay() || blocked {
			continue
		}
		if lim := e.limits[c.key].Get(c.dim); lim > 0 {
			e.allocate(c, lim)
		}
	}
	if now.Sub(e.lastPrune) >= time.Minute {
		e.prune(now)
	}
	if day := Window(seenDim, now); day != e.seenDay {
		e.seenDay = day
		for id, d := range e.seen {
			if d < day {
				delete(e.seen, id)
				e.seenDirty = true
			}
		}
	}
	var out []string
	for id, ed := range e.edges {
		if ed.streams == 0 {
			continue
		}
		e.see(id, now) // a connection that lasts into a new day is seen in it
		if blocked && len(ed.pending) > 0 {
			// Computed before the hold began (an edge connected meanwhile): not the
			// edge's yet, and a held QuotaGrants carries no credit.
			for _, s := range ed.pending {
				s.unsent, s.queued = 0, false
			}
			clear(ed.pending)
			ed.pending = ed.pending[:0]
		}
		if blocked || wasHeld || len(ed.pending) > 0 || now.Sub(ed.lastQuota) < activeFor || now.Sub(ed.lastSent) >= e.heartbeat {
			out = append(out, id)
		}
	}
	slices.Sort(out)
	return out
}

// holding reports whether the engine holds every grant back because what some edges
// hold and consumed is unknown, which the previous process granted or which they
// admitted while no control plane ran: granting now could hand out again what they
// hold or spent. It holds while an edge the previous process saw in the current day
// has not reported since the start (RestoreEdges), for up to the hold cap since the
// start, and while warmingUp.
func (e *Engine) holding(now time.Time) bool {
	if len(e.awaited) > 0 && now.Sub(e.started) < e.holdCap {
		return true
	}
	return e.warmingUp(now)
}

// warmingUp reports whether some connected edge has not been heard from since the
// engine started, connected in the startup period and less than the warmup ago: what
// it holds (granted by the previous process) and what it consumed while that process
// was gone are unknown. This covers an edge the store did not name (the previous
// process had not written it, or the file predates that); an edge it named is awaited
// past the warmup, up to the hold cap (holding).
func (e *Engine) warmingUp(now time.Time) bool {
	if now.Sub(e.started) >= startupPeriod+e.warmup {
		return false
	}
	for _, ed := range e.edges {
		if ed.streams > 0 && !ed.known && now.Sub(ed.connectedAt) < e.warmup && ed.connectedAt.Sub(e.started) < startupPeriod {
			return true
		}
	}
	return false
}

// decay folds the demand reported since the last tick into each edge's estimate and
// reports whether any edge has demand. A disconnected edge has none.
func (c *counter) decay() bool {
	any := false
	for _, s := range c.list {
		acc := float64(s.demandAcc)
		s.demandAcc = 0
		switch {
		case s.e.streams == 0:
			s.demand, s.recent = 0, 0
		case s.demand == 0:
			s.demand = acc // a first report counts in full
		default:
			s.demand = demandAlpha*acc + (1-demandAlpha)*s.demand
		}
		s.recent = recentAlpha*acc + (1-recentAlpha)*s.recent
		if s.demand < minDemand {
			s.demand = 0
		}
		if s.recent < minDemand {
			s.recent = 0
		}
		any = any || s.demand > 0 || s.recent > 0
	}
	return any
}

// rollover starts window cur of c's key and dimension with c's demand estimates, so
// that the first tick of a window grants without waiting for new reports. Consumed
// and balances start from zero.
func (e *Engine) rollover(c *counter, cur int64) {
	c.rolled = true
	var next *counter
	for _, s := range c.list {
		if (s.demand <= 0 && s.recent <= 0) || s.e.streams == 0 {
			continue
		}
		if next == nil {
			next = e.counter(ckey{c.key, c.dim, cur})
		}
		if ns := next.share(s.e); ns.demand == 0 {
			ns.demand, ns.recent = s.demand, s.recent
		}
	}
}

// expire drops a counter whose window has ended (and its grace).
func (e *Engine) expire(c *counter) {
	c.dead = true
	delete(e.counters, c.ckey)
	for _, s := range c.list {
		delete(s.e.shares, c.ckey)
	}
	e.expired = append(e.expired, Counter{Key: c.key, Dim: c.dim, Window: c.window})
}

// allocate splits what c's limit leaves free among the edges with demand.
func (e *Engine) allocate(c *counter, limit int64) {
	var taken int64
	cands := e.scratch[:0]
	var sumD float64
	for _, s := range c.list {
		taken += max(s.balance, 0) + s.unsent + s.inflightSum
		if s.demand > 0 || s.recent > 0 {
			cands = append(cands, s)
			sumD += s.demand
		}
	}
	e.scratch = cands[:0]
	free := limit - c.consumed - taken
	if free < 1 || len(cands) == 0 {
		return
	}
	left := free
	short := false
	for _, s := range cands {
		// An edge with recent but no current demand stands by with what its recent
		// demand wants.
		d := max(s.demand, s.recent)
		want := max(int64(math.Ceil(wantIntervals*(d+math.Sqrt(d)))), 1)
		s.need = want - max(s.balance, 0) - s.unsent - s.inflightSum
		s.credit = 0
		if s.need <= 0 {
			continue
		}
		var cr int64
		if s.demand > 0 {
			cr = min(int64(float64(free)*s.demand/sumD), s.need, left)
		}
		s.credit = cr
		left -= cr
		short = short || cr == 0
	}
	if short && left > 0 {
		// Shares below one unit round to nothing: give one unit each, most demand
		// first (then the standing-by edges, most recent demand first), while any is
		// free.
		slices.SortFunc(cands, func(a, b *share) int {
			return cmp.Or(cmp.Compare(b.demand, a.demand), cmp.Compare(b.recent, a.recent), cmp.Compare(a.e.id, b.e.id))
		})
		for _, s := range cands {
			if left < 1 {
				break
			}
			if s.need > 0 && s.credit == 0 {
				s.credit = 1
				left--
			}
		}
	}
	for _, s := range cands {
		if s.credit <= 0 {
			continue
		}
		s.unsent += s.credit
		e.stats.Grants++
		e.stats.Credit += uint64(s.credit)
		if !s.queued {
			s.queued = true
			s.e.pending = append(s.e.pending, s)
		}
		s.credit = 0
	}
}

// Take returns the QuotaGrants for one edge: every credit computed for it since the
// last Take, numbered with the next seq of this edge (which the edge confirms in its
// batches' applied_grant_seq). From now on that credit counts as in flight. It may
// have no grants (a heartbeat). While the engine holds credit back (as of the last
// Tick) it has none and says Hold, and its edge count includes the awaited edges that
// are not connected.
func (e *Engine) Take(id string) *berryv1.QuotaGrants {
	now := e.now()
	e.mu.Lock()
	defer e.mu.Unlock()
	msg := &berryv1.QuotaGrants{NowUnixMs: now.UnixMilli(), Edges: uint32(e.connected), Instance: e.instance, Hold: e.hold}
	if e.hold {
		// Edges split the limit by this count meanwhile: the awaited edges admit
		// their share too.
		msg.Edges += uint32(e.holdAway)
	}
	ed := e.edges[id]
	if ed == nil {
		return msg
	}
	ed.grantSeq++
	msg.Seq = ed.grantSeq
	msg.Grants = make([]*berryv1.QuotaGrant, 0, len(ed.pending))
	for _, s := range ed.pending {
		c := s.c
		s.queued = false
		if c.dead || s.unsent <= 0 {
			s.unsent = 0
			continue
		}
		msg.Grants = append(msg.Grants, &berryv1.QuotaGrant{Key: c.key, Dimension: c.dim, Window: c.window, Credit: s.unsent})
		s.inflight = append(s.inflight, grant{seq: msg.Seq, credit: s.unsent})
		s.inflightSum += s.unsent
		s.unsent = 0
		if !s.listed {
			s.listed = true
			ed.inflight = append(ed.inflight, s)
		}
	}
	clear(ed.pending)
	ed.pending = ed.pending[:0]
	ed.lastSent = now
	e.stats.Messages++
	return msg
}

// TakeDirty returns the counters whose consumption changed since the last call, to
// be written, and the windows dropped since, to be deleted.
func (e *Engine) TakeDirty() (put, del []Counter) {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, c := range e.dirty {
		c.dirty = false
		if !c.dead {
			put = append(put, Counter{Key: c.key, Dim: c.dim, Window: c.window, Consumed: c.consumed})
		}
	}
	clear(e.dirty)
	e.dirty = e.dirty[:0]
	del, e.expired = e.expired, nil
	return put, del
}

// Redirty gives back what TakeDirty returned when writing it failed: the next
// TakeDirty returns it again (with the counters' newer values).
func (e *Engine) Redirty(put, del []Counter) {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, p := range put {
		if c := e.counters[ckey{p.Key, p.Dim, p.Window}]; c != nil {
			e.markDirty(c)
		}
	}
	e.expired = append(e.expired, del...)
}

// TakeEdges returns the edges seen in the current day (connected or reporting, or
// restored by RestoreEdges and still current), sorted by id, when they changed since
// the last call; changed is false when there is nothing new to write. The store keeps
// them for RestoreEdges.
func (e *Engine) TakeEdges() (edges []SeenEdge, changed bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if !e.seenDirty {
		return nil, false
	}
	e.seenDirty = false
	edges = make([]SeenEdge, 0, len(e.seen))
	for id, d := range e.seen {
		edges = append(edges, SeenEdge{ID: id, Day: d})
	}
	slices.SortFunc(edges, func(a, b SeenEdge) int { return cmp.Compare(a.ID, b.ID) })
	return edges, true
}

// RedirtyEdges is called when writing what TakeEdges returned failed: the next
// TakeEdges returns the edges again.
func (e *Engine) RedirtyEdges() {
	e.mu.Lock()
	e.seenDirty = true
	e.mu.Unlock()
}

// Holding reports whether the last Tick held credit back, and which edges the
// previous process saw have not reported yet (sorted); past the hold cap they hold
// nothing up.
func (e *Engine) Holding() (bool, []string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	var ids []string
	for id := range e.awaited {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return e.hold, ids
}

// Uses returns how much of key's limits lim (the current config's) is used in their
// current windows.
func (e *Engine) Uses(key string, lim Limits) []Use {
	now := e.now()
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []Use
	for _, d := range Dimensions {
		if lim[d] <= 0 {
			continue
		}
		w := Window(d, now)
		u := Use{Dim: d, Limit: lim[d], WindowEnd: WindowEnd(d, w)}
		if c := e.counters[ckey{key, d, w}]; c != nil {
			u.Used = c.consumed
			for _, s := range c.list {
				u.Outstanding += max(s.balance, 0) + s.unsent + s.inflightSum
			}
		}
		out = append(out, u)
	}
	return out
}

// Connected is the number of connected edges.
func (e *Engine) Connected() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.connected
}

// Stats returns the engine's counts.
func (e *Engine) Stats() Stats {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.stats
}

// prune forgets edges gone for edgeExpiry that no live counter names.
func (e *Engine) prune(now time.Time) {
	e.lastPrune = now
	for id, ed := range e.edges {
		if ed.streams == 0 && len(ed.shares) == 0 && now.Sub(ed.lastSeen) >= edgeExpiry {
			delete(e.edges, id)
		}
	}
}
