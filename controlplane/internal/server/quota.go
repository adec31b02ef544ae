package server

import (
	"cmp"
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/berry-gateway/berry/controlplane/internal/cache"
	"github.com/berry-gateway/berry/controlplane/internal/quota"
	"github.com/berry-gateway/berry/controlplane/internal/store"
	berryv1 "github.com/berry-gateway/berry/pkg/api/berry/v1"
	"github.com/berry-gateway/berry/pkg/config"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/protobuf/proto"
)

// Usage and quota defaults.
const (
	// DefaultQuotaInterval is how often credit is computed and pushed to edges.
	DefaultQuotaInterval = quota.DefaultInterval
	// DefaultUsageFlushInterval is how often the ledger and the quota counters are
	// written to the store (one transaction each time).
	DefaultUsageFlushInterval = time.Second
	// usagePurgeEvery is how often ledger rows past retention and quota counters of
	// past windows are deleted.
	usagePurgeEvery = time.Hour
	// finalFlushTimeout bounds the flush on shutdown.
	finalFlushTimeout = 10 * time.Second
)

// QuotaService keeps the fleet's usage ledger and quota leases: it takes the usage and
// quota reports of the edges' observation batches, writes the ledger and the counters
// to the store in batches, and every interval computes each edge's credit, which the
// edge service sends down that edge's stream. The quota engine owns the lease state;
// this service owns the ledger not yet written and the edges' mailboxes.
type QuotaService struct {
	engine    *quota.Engine // replaced when this member becomes a cluster's leader (engineMu)
	engineMu  sync.RWMutex
	engineGen uint64
	opts      QuotaOptions
	cluster   *clusterState // nil: one node
	relay     *relay        // a follower's edges' batches go to the leader through it; nil on one node
	terms     atomic.Uint64 // leaderships gained: each starts a new engine from the store
	store     *store.Store
	snapshots *cache.Snapshots // the config: limits, retention
	log       *slog.Logger
	interval  time.Duration
	flush     time.Duration
	now       func() time.Time

	writeMu sync.Mutex // one write at a time: counters are written as absolute values
	mu      sync.Mutex
	usage   map[store.UsageKey]store.UsageCounters // received, not yet written
	boxes   map[string]*mailbox                    // edge id → its newest stream's mailbox
	// relayed holds, per edge of a follower, the grants the leader computed for it
	// that its stream has not taken yet (in order: the edge applies each once).
	relayed  map[string][]*berryv1.QuotaGrants
	sessions uint64

	restored   atomic.Bool // the counters of the current windows were read back
	held       bool        // the engine held credit back at the last tick (Run's)
	flushes    atomic.Uint64
	flushFails atomic.Uint64
}

// mailbox tells one stream that its edge has a QuotaGrants to take.
type mailbox struct {
	ready   chan struct{} // capacity 1: a signal, not a queue
	session uint64
}

// QuotaOptions tunes NewQuotaService. The zero value is usable.
type QuotaOptions struct {
	// Interval is how often credit is computed and sent (default
	// DefaultQuotaInterval); FlushInterval how often the store is written (default
	// DefaultUsageFlushInterval).
	Interval, FlushInterval time.Duration
	// Now is the clock (default time.Now); windows and ledger hours are counted by it.
	Now func() time.Time
	// HoldCap bounds how long after the start credit is held back for edges the
	// previous process saw that have not reported yet (default quota.DefaultHoldCap).
	HoldCap time.Duration
	Log     *slog.Logger
}

// NewQuotaService returns the quota service on st, reading limits and settings from
// snapshots.
func NewQuotaService(st *store.Store, snapshots *cache.Snapshots, opts QuotaOptions) *QuotaService {
	q := &QuotaService{
		store: st, snapshots: snapshots, log: cmp.Or(opts.Log, slog.Default()),
		interval: cmp.Or(opts.Interval, DefaultQuotaInterval), flush: cmp.Or(opts.FlushInterval, DefaultUsageFlushInterval),
		now:   opts.Now,
		usage: map[store.UsageKey]store.UsageCounters{}, boxes: map[string]*mailbox{}, relayed: map[string][]*berryv1.QuotaGrants{}, opts: opts,
	}
	if q.now == nil {
		q.now = time.Now
	}
	q.engine = quota.New(quota.Options{Now: q.now, Interval: q.interval, HoldCap: opts.HoldCap})
	return q
}

// eng returns the current engine and its generation.
func (q *QuotaService) eng() (*quota.Engine, uint64) {
	q.engineMu.RLock()
	defer q.engineMu.RUnlock()
	return q.engine, q.engineGen
}

// leaderChanged is told when this member of a cluster gains or loses the leadership.
// A new leader starts a new engine, restored from the replicated counters like a
// restarted control plane: it holds credit until the edges the previous leader saw
// have reported, so credit the old leader granted is never granted again.
// The cluster calls it before the member takes writes, so a loop that sees this
// member lead (granting) also sees the new term.
func (q *QuotaService) leaderChanged(leading bool) {
	if leading {
		q.terms.Add(1)
	}
}

// granting reports whether this control plane computes quota credit: always on one
// node; on a cluster, only the leader.
func (q *QuotaService) granting() bool {
	return q.cluster == nil || q.cluster.replica.Leading()
}

// renew replaces the engine by a new one, to be restored from the store.
func (q *QuotaService) renew() {
	q.engineMu.Lock()
	q.engine = quota.New(quota.Options{Now: q.now, Interval: q.interval, HoldCap: q.opts.HoldCap})
	q.engineGen++
	q.engineMu.Unlock()
	q.restored.Store(false)
}

// wakeAll signals every stream: each takes its grants from the current engine,
// connecting its edge to it first (a new leader's engine, once restored).
func (q *QuotaService) wakeAll() {
	q.mu.Lock()
	ids := make([]string, 0, len(q.boxes))
	for id := range q.boxes {
		ids = append(ids, id)
	}
	q.mu.Unlock()
	for _, id := range ids {
		q.notify(id)
	}
}

// QuotaStreams is told of every edge Sync stream (EdgeService.quotas).
type QuotaStreams interface {
	// OpenStream is called when an edge's stream is accepted.
	OpenStream(edgeID string) QuotaStream
}

// QuotaStream is one Sync stream's part in the fleet's quotas.
type QuotaStream interface {
	// Observed is called with every observation batch, on the stream's receiving
	// goroutine: it must not block.
	Observed(b *berryv1.ObservationBatch)
	// Ready is signalled when the edge has a QuotaGrants to send: Take returns it.
	Ready() <-chan struct{}
	Take() *berryv1.QuotaGrants
	// Close is called when the stream ends.
	Close()
}

// quotaStream is one Sync stream's side of the quota service.
type quotaStream struct {
	q     *QuotaService
	edge  string
	box   *mailbox
	relay *relay // nil: on one node, and for the streams a follower relays to the leader

	mu     sync.Mutex // the receiving and the sending goroutine both use the stream
	engine *quota.Engine
	stream *quota.Stream
	gen    uint64
	closed bool
}

// OpenStream implements QuotaStreams: the stream becomes the one its edge's grants
// go down (a reconnecting edge's newer stream takes over from the old one).
func (q *QuotaService) OpenStream(edgeID string) QuotaStream { return q.openStream(edgeID, false) }

// openStream opens a stream of this member's edge, or, on the leader, one a
// follower relays (which this member never relays in turn).
func (q *QuotaService) openStream(edgeID string, relayed bool) *quotaStream {
	e, gen := q.eng()
	st := e.Connect(edgeID)
	q.mu.Lock()
	defer q.mu.Unlock()
	q.sessions++
	box := &mailbox{ready: make(chan struct{}, 1), session: q.sessions}
	q.boxes[edgeID] = box
	r := q.relay
	if relayed {
		r = nil
	}
	if r != nil {
		r.opened(box.session, edgeID)
	}
	return &quotaStream{q: q, edge: edgeID, stream: st, gen: gen, engine: e, box: box, relay: r}
}

func (s *quotaStream) Ready() <-chan struct{} { return s.box.ready }

// Take returns the grants to send: those the leader computed for a follower's edge
// first, one message at a time, else the engine's; nil when there are none (a
// follower's engine grants nothing).
func (s *quotaStream) Take() *berryv1.QuotaGrants {
	q := s.q
	q.mu.Lock()
	if gs := q.relayed[s.edge]; len(gs) > 0 {
		g := gs[0]
		if len(gs) == 1 {
			delete(q.relayed, s.edge)
		} else {
			q.relayed[s.edge] = gs[1:]
		}
		q.mu.Unlock()
		if len(gs) > 1 {
			q.notify(s.edge)
		}
		return g
	}
	q.mu.Unlock()
	if !q.granting() {
		return nil
	}
	e, _ := s.current()
	return e.Take(s.edge)
}

// maxRelayedGrants bounds the grants kept for an edge of a follower whose stream
// does not take them (it is reconnecting): the oldest go first, and the edge's next
// report of its balances corrects what the leader thinks it holds.
const maxRelayedGrants = 64

// deliver hands grants the leader computed for an edge of this follower to its
// stream. Grants for an edge whose stream has closed are dropped: the leader learns
// of the closing and counts what the edge reports when it is back.
func (q *QuotaService) deliver(edge string, g *berryv1.QuotaGrants) {
	if g == nil {
		return
	}
	q.mu.Lock()
	if q.boxes[edge] == nil {
		q.mu.Unlock()
		return
	}
	gs := append(q.relayed[edge], g)
	if len(gs) > maxRelayedGrants {
		gs = gs[len(gs)-maxRelayedGrants:]
	}
	q.relayed[edge] = gs
	q.mu.Unlock()
	q.notify(edge)
}

// current returns the engine the stream is connected to, connecting it to a new
// one (a new leader's) first.
func (s *quotaStream) current() (*quota.Engine, *quota.Stream) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if e, gen := s.q.eng(); gen != s.gen && !s.closed {
		s.stream.Close()
		s.engine, s.gen, s.stream = e, gen, e.Connect(s.edge)
	}
	return s.engine, s.stream
}

func (s *quotaStream) Close() {
	s.q.mu.Lock()
	if cur := s.q.boxes[s.edge]; cur != nil && cur.session == s.box.session {
		delete(s.q.boxes, s.edge)
		delete(s.q.relayed, s.edge)
	}
	s.q.mu.Unlock()
	if s.relay != nil {
		s.relay.closed(s.box.session, s.edge)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	s.stream.Close()
}

// Observed takes a batch's quota reports and usage, once per batch: a batch the
// engine has seen (same edge, process, stream and seq) is ignored. A follower's
// engine only tells which batches are new: their quota reports go to the leader's
// (relay), and their usage into this member's ledger rows, which go to the leader
// through ForwardUsage.
func (s *quotaStream) Observed(b *berryv1.ObservationBatch) {
	_, st := s.current()
	if s.relay != nil && !s.q.granting() {
		if !st.Observe(&berryv1.ObservationBatch{Instance: b.GetInstance(), Seq: b.GetSeq()}) {
			return
		}
		relayed := proto.Clone(b).(*berryv1.ObservationBatch)
		relayed.Usage = nil
		s.relay.batch(s.box.session, s.edge, relayed)
	} else if !st.Observe(b) {
		return
	}
	if len(b.GetUsage()) == 0 {
		return
	}
	hour := s.q.now().Unix() / 3600
	s.q.mu.Lock()
	defer s.q.mu.Unlock()
	for _, r := range b.GetUsage() {
		k := store.UsageKey{Hour: hour, Key: r.GetKey(), Model: r.GetModel(), Provider: r.GetProvider(), UpstreamModel: r.GetUpstreamModel()}
		c := s.q.usage[k]
		c.Add(store.CountersOf(r))
		s.q.usage[k] = c
	}
}

// Run computes and announces credit every interval, writes the ledger and the
// counters every flush interval and purges hourly, until ctx ends; then it writes
// what is left. Until the counters of the current windows have been read back from
// the store, it grants nothing and writes nothing (consumption is kept in memory).
// After that it grants nothing either while the edges the previous process saw today
// have not all reported, for up to the hold cap (quota.DefaultHoldCap): the grants
// then say Hold, and edges apply their disconnected rule.
func (q *QuotaService) Run(ctx context.Context) {
	t := time.NewTicker(q.interval)
	defer t.Stop()
	var lastFlush, lastPurge time.Time
	var applied *berryv1.Snapshot
	var appliedGen, term uint64
	if q.granting() {
		q.restore(ctx)
	}
	for {
		snap, changed := q.snapshots.Watch()
		engine, gen := q.eng()
		if snap != applied || gen != appliedGen {
			applied, appliedGen = snap, gen
			engine.SetLimits(quota.LimitsFromConfig(snap.GetConfig()))
		}
		select {
		case <-ctx.Done():
			q.finalFlush()
			return
		case <-changed:
			continue
		case <-t.C:
		}
		granting := q.granting()
		if t := q.terms.Load(); t != term {
			// Read after granting: a member that leads has counted its term.
			term = t
			q.renew()
			continue
		}
		if !granting {
			// A follower grants nothing (its edges apply their disconnected rule) and
			// hands its edges' ledger rows to the leader.
			if now := q.now(); now.Sub(lastFlush) >= q.flush {
				lastFlush = now
				q.write(ctx)
			}
			continue
		}
		if !q.restored.Load() {
			if !q.restore(ctx) {
				continue
			}
			if q.cluster != nil {
				// The edges' streams are connected to the previous engine: they
				// move to this one (which holds, or grants) when woken.
				q.wakeAll()
			}
		}
		for _, id := range engine.Tick() {
			q.notify(id)
		}
		q.logHold()
		now := q.now()
		if now.Sub(lastFlush) >= q.flush {
			lastFlush = now
			q.write(ctx)
		}
		if now.Sub(lastPurge) >= usagePurgeEvery {
			lastPurge = now
			q.purge(ctx)
		}
	}
}

// logHold logs when the engine stops holding credit back.
func (q *QuotaService) logHold() {
	e, _ := q.eng()
	held, away := e.Holding()
	switch {
	case held == q.held:
	case held:
		q.log.Info("quota credit held back: edges have not reported yet", "edges", away)
	case len(away) > 0:
		q.log.Warn("quota credit granted again although edges have not reported: the hold cap passed; what they admitted meanwhile counts when they report",
			"edges", away)
	default:
		q.log.Info("quota credit granted again: the edges have reported")
	}
	q.held = held
}

// restore reads back the consumption of the current windows, which the engine adds
// to what edges reported since the start, and the edges the previous process saw in
// the current day, which the engine waits for before it grants; once.
func (q *QuotaService) restore(ctx context.Context) bool {
	if q.restored.Load() {
		return true
	}
	now := q.now()
	from := make(map[berryv1.QuotaDimension]int64, len(quota.Dimensions))
	for _, d := range quota.Dimensions {
		from[d] = quota.Window(d, now)
	}
	cs, err := q.store.QuotaCounters(ctx, from)
	if err != nil {
		q.log.Error("reading quota counters; no credit is granted until it succeeds", "err", err)
		return false
	}
	es, err := q.store.QuotaEdges(ctx, quota.Window(berryv1.QuotaDimension_QUOTA_DIMENSION_REQUESTS_DAY, now))
	if err != nil {
		q.log.Error("reading quota edges; no credit is granted until it succeeds", "err", err)
		return false
	}
	out := make([]quota.Counter, len(cs))
	for i, c := range cs {
		out[i] = quota.Counter{Key: c.Key, Dim: c.Dim, Window: c.Window, Consumed: c.Consumed}
	}
	seen := make([]quota.SeenEdge, len(es))
	for i, e := range es {
		seen[i] = quota.SeenEdge{ID: e.ID, Day: e.Day}
	}
	e, _ := q.eng()
	e.Restore(out)
	e.RestoreEdges(seen)
	q.restored.Store(true)
	if len(out)+len(seen) > 0 {
		_, away := e.Holding()
		q.log.Info("quota counters restored", "counters", len(out), "edges_awaited", len(away))
	}
	return true
}

func (q *QuotaService) notify(edge string) {
	q.mu.Lock()
	box := q.boxes[edge]
	q.mu.Unlock()
	if box == nil {
		return
	}
	select {
	case box.ready <- struct{}{}:
	default: // already signalled: the stream takes everything at once
	}
}

// write writes the ledger received and the counters changed since the last write in
// one transaction; on failure both are kept for the next.
func (q *QuotaService) write(ctx context.Context) {
	q.writeMu.Lock()
	defer q.writeMu.Unlock()
	q.mu.Lock()
	usage := q.usage
	q.usage = map[store.UsageKey]store.UsageCounters{}
	q.mu.Unlock()
	engine, _ := q.eng()
	put, del := engine.TakeDirty()
	edges, edgesChanged := engine.TakeEdges()
	if !q.granting() {
		// A follower's counters are its own edges' only, not the fleet's.
		put, del, edges, edgesChanged = nil, nil, nil, false
	}
	b := &store.UsageBatch{Usage: usage, QuotaPut: storeCounters(put), QuotaDelete: storeCounters(del),
		QuotaEdges: storeEdges(edges), ReplaceEdges: edgesChanged}
	if b.Empty() {
		return
	}
	err := q.writeUsage(ctx, b)
	if err == nil {
		q.flushes.Add(1)
		return
	}
	q.flushFails.Add(1)
	q.log.Error("writing the usage ledger; kept for the next write", "err", err, "rows", len(usage))
	engine.Redirty(put, del)
	if edgesChanged {
		engine.RedirtyEdges()
	}
	q.mu.Lock()
	for k, c := range usage {
		cur := q.usage[k]
		cur.Add(c)
		q.usage[k] = cur
	}
	q.mu.Unlock()
}

func storeCounters(cs []quota.Counter) []store.QuotaCounter {
	if len(cs) == 0 {
		return nil
	}
	out := make([]store.QuotaCounter, len(cs))
	for i, c := range cs {
		out[i] = store.QuotaCounter{Key: c.Key, Dim: c.Dim, Window: c.Window, Consumed: c.Consumed}
	}
	return out
}

func storeEdges(es []quota.SeenEdge) []store.QuotaEdge {
	if len(es) == 0 {
		return nil
	}
	out := make([]store.QuotaEdge, len(es))
	for i, e := range es {
		out[i] = store.QuotaEdge{ID: e.ID, Day: e.Day}
	}
	return out
}

// finalFlush writes what is left when the service stops, on a context of its own:
// the one Run had has ended.
func (q *QuotaService) finalFlush() {
	ctx, cancel := context.WithTimeout(context.Background(), finalFlushTimeout)
	defer cancel()
	if !q.granting() || !q.restore(ctx) {
		// Consumption counted since the start has not been added to the stored
		// counters: writing them would lose the stored part. The ledger is additive.
		q.mu.Lock()
		usage := q.usage
		q.usage = map[store.UsageKey]store.UsageCounters{}
		q.mu.Unlock()
		if len(usage) == 0 {
			return
		}
		if err := q.writeUsage(ctx, &store.UsageBatch{Usage: usage}); err != nil {
			q.log.Error("writing the usage ledger on shutdown", "err", err, "rows", len(usage))
		}
		return
	}
	q.write(ctx)
}

// purge deletes ledger rows older than the settings' retention and quota counters of
// windows before the previous one.
func (q *QuotaService) purge(ctx context.Context) {
	now := q.now()
	snap, _ := q.snapshots.Watch()
	days := snap.GetConfig().GetSettings().GetUsageRetentionDays()
	if days == 0 {
		days = config.DefaultUsageRetentionDays
	}
	before := now.Add(-time.Duration(days) * 24 * time.Hour)
	windows := make(map[berryv1.QuotaDimension]int64, len(quota.Dimensions))
	for _, d := range quota.Dimensions {
		windows[d] = quota.Window(d, now) - 1
	}
	if q.cluster != nil {
		q.purgeReplicated(ctx, before, windows)
		return
	}
	rows, counters, err := q.store.PurgeUsage(ctx, before, windows)
	if err != nil {
		q.log.Error("purging the usage ledger", "err", err)
		return
	}
	if rows+counters > 0 {
		q.log.Info("usage purged", "ledger_rows", rows, "quota_counters", counters, "retention_days", days)
	}
}

// purgeReplicated deletes what is past retention on every member, through the log;
// only the leader proposes it.
func (q *QuotaService) purgeReplicated(ctx context.Context, before time.Time, windows map[berryv1.QuotaDimension]int64) {
	if !q.cluster.replica.Leading() {
		return
	}
	p := &berryv1.PurgeEntry{BeforeHour: before.Unix() / 3600}
	for d, w := range windows {
		p.WindowsBefore = append(p.WindowsBefore, &berryv1.QuotaCounterEntry{Dimension: d, Window: w})
	}
	if err := q.cluster.replica.Apply(ctx, &berryv1.RaftEntry{Entry: &berryv1.RaftEntry_Purge{Purge: p}}); err != nil {
		q.log.Error("purging the usage ledger", "err", err)
	}
}

// Flush writes the ledger and the counters now (for tests and admin reads that must
// see the last second).
func (q *QuotaService) Flush(ctx context.Context) {
	if q.restored.Load() || !q.granting() {
		q.write(ctx)
	}
}

// Quota and usage metrics.
var (
	descGrantsSent = prometheus.NewDesc("berry_controlplane_quota_grants_messages_sent_total",
		"QuotaGrants messages sent to edges (credit, or the clock and edge count only).", nil, nil)
	descGrants = prometheus.NewDesc("berry_controlplane_quota_grants_total",
		"Credit grants computed (one key, limit and window for one edge).", nil, nil)
	descQuotaBatches = prometheus.NewDesc("berry_controlplane_usage_batches_total",
		"Observation batches taken into the usage ledger and quotas, by result: applied, or duplicate (a seq already applied, ignored).", []string{"result"}, nil)
	descUsageWrites = prometheus.NewDesc("berry_controlplane_usage_writes_total",
		"Writes of the usage ledger and quota counters to the store, by result: ok or failed (kept for the next write).", []string{"result"}, nil)
	descUsagePending = prometheus.NewDesc("berry_controlplane_usage_pending_rows",
		"Usage ledger rows received and not yet written.", nil, nil)
)

// quotaCollector exposes the quota service's counts at scrape time.
type quotaCollector struct {
	q *QuotaService
	e *EdgeService
}

// Describe implements prometheus.Collector.
func (c quotaCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descGrantsSent, descGrants, descQuotaBatches, descUsageWrites, descUsagePending} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c quotaCollector) Collect(ch chan<- prometheus.Metric) {
	e, _ := c.q.eng()
	st := e.Stats()
	counter := func(d *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	counter(descGrantsSent, c.e.grantsSent.Load())
	counter(descGrants, st.Grants)
	counter(descQuotaBatches, st.BatchesApplied, "applied")
	counter(descQuotaBatches, st.BatchesIgnored, "duplicate")
	counter(descUsageWrites, c.q.flushes.Load(), "ok")
	counter(descUsageWrites, c.q.flushFails.Load(), "failed")
	c.q.mu.Lock()
	pending := len(c.q.usage)
	c.q.mu.Unlock()
	ch <- prometheus.MustNewConstMetric(descUsagePending, prometheus.GaugeValue, float64(pending))
}
