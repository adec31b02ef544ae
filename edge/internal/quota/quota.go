// Package quota enforces a key's limits and budgets — requests per minute, hour and
// day, tokens per minute and day, cost per day and month — for the whole fleet, from
// credit the control plane leases to each edge (its QuotaGrants): a request is
// admitted against the credit this edge holds, so the request path never waits on the
// network, and the control plane never grants more than what is left of a limit in its
// window. Windows are fixed and counted by the control plane's clock, whose offset
// from the local clock every grant refreshes.
//
// Without a grant yet for a key's window (a key first seen, a window just begun) an
// edge admits one request on credit it does not have; the debt is reported as
// consumption like any other, so the control plane grants that much less. An edge
// that has lost the control plane — or whose control plane holds credit back after a
// restart, until every edge has told it what it consumed — spends its credit, then
// follows the settings' quota_when_disconnected rule: "share" admits up to the limit divided by the last
// known number of edges per window, "open" admits, "closed" refuses. A standalone
// edge (no control plane) grants itself each limit per window.
package quota

import (
	"math"
	"sync"
	"time"

	berryv1 "github.com/berry-gateway/berry/pkg/api/berry/v1"
	"github.com/berry-gateway/berry/pkg/config"
)

// Dimension indexes Limits; Dimension d is berryv1.QuotaDimension d+1.
type Dimension int

// The dimensions.
const (
	RequestsMinute Dimension = iota
	RequestsHour
	RequestsDay
	TokensMinute
	TokensDay
	CostDay
	CostMonth
	NumDimensions
)

func (d Dimension) proto() berryv1.QuotaDimension { return berryv1.QuotaDimension(d + 1) }

// Kind is what a dimension counts.
type Kind uint8

// Kinds.
const (
	KindRequests Kind = iota
	KindTokens
	KindCost
)

// Kind says what d counts.
func (d Dimension) Kind() Kind {
	switch d {
	case RequestsMinute, RequestsHour, RequestsDay:
		return KindRequests
	case TokensMinute, TokensDay:
		return KindTokens
	}
	return KindCost
}

// Window is the window of d at t (the control plane's clock): its number and end.
func (d Dimension) Window(t time.Time) (int64, time.Time) {
	t = t.UTC()
	var size int64
	switch d {
	case RequestsMinute, TokensMinute:
		size = 60
	case RequestsHour:
		size = 3600
	case RequestsDay, TokensDay, CostDay:
		size = 86400
	default: // CostMonth
		y, m, _ := t.Date()
		return int64(y)*12 + int64(m) - 1, time.Date(y, m+1, 1, 0, 0, 0, 0, time.UTC)
	}
	w := t.Unix() / size
	return w, time.Unix((w+1)*size, 0)
}

// Limits are a key's limits per dimension (cost in micro-USD); 0 is none.
type Limits [NumDimensions]int64

// LimitsOf reads a key's config.
func LimitsOf(rl *berryv1.RateLimit, b *berryv1.Budget) Limits {
	micro := func(usd float64) int64 {
		if usd <= 0 || math.IsNaN(usd) || math.IsInf(usd, 0) {
			return 0
		}
		return int64(math.Round(usd * 1e6))
	}
	return Limits{
		RequestsMinute: int64(rl.GetRequestsPerMinute()),
		RequestsHour:   int64(rl.GetRequestsPerHour()),
		RequestsDay:    int64(rl.GetRequestsPerDay()),
		TokensMinute:   int64(min(rl.GetTokensPerMinute(), math.MaxInt64)),
		TokensDay:      int64(min(rl.GetTokensPerDay(), math.MaxInt64)),
		CostDay:        micro(b.GetUsdPerDay()),
		CostMonth:      micro(b.GetUsdPerMonth()),
	}
}

// Any reports whether some limit is set.
func (l *Limits) Any() bool { return *l != Limits{} }

// Needs reports whether the key has a token or cost limit: only then does admission
// need a request's token estimate.
func (l *Limits) Needs(k Kind) bool {
	for d := range NumDimensions {
		if l[d] > 0 && d.Kind() == k {
			return true
		}
	}
	return false
}

// Amounts are what a request takes of each kind: reserved when it is admitted,
// settled to the real amounts when it ends.
type Amounts struct {
	Requests, Tokens, CostMicroUSD int64
}

func (a Amounts) of(k Kind) int64 {
	switch k {
	case KindRequests:
		return a.Requests
	case KindTokens:
		return a.Tokens
	}
	return a.CostMicroUSD
}

// DefaultOutputReservation is the output a request is assumed to produce when it
// sets no max_tokens (max_completion_tokens, max_output_tokens): reserved with its
// estimated input when it is admitted against a token limit or a budget, and settled
// to the real usage when it ends.
const DefaultOutputReservation = 1024

// Defaults of the lease protocol.
const (
	// Disconnected is how long without grants before the edge counts as cut off
	// from the control plane (which sends grants at least every 5 s).
	Disconnected = 10 * time.Second
	// ReturnAfter is how long a key's credit may sit unused (no request, no grant)
	// before the edge hands it back, so another edge's demand can have it. Shorter, a
	// key used every few seconds would hand its credit back between requests and have
	// the next one refused until a new grant comes (measured: 18–32% of requests of
	// keys at or below their limit at 5 s, 3–7% at 30 s).
	ReturnAfter = 30 * time.Second
)

// Ledger is one edge's credit for every key. The zero value is ready; it is safe for
// concurrent use.
type Ledger struct {
	mu   sync.Mutex
	keys map[string]*keyState
	// offset is the control plane's clock minus the local one.
	offset time.Duration
	edges  int
	// The last grants message applied.
	instance  string
	seq       uint64
	lastGrant time.Time
	// mode is quota_when_disconnected; self: a standalone edge grants itself.
	mode string
	self bool
	// hold: the control plane said it holds credit (it restarted and has not heard
	// from every edge yet): the disconnected rule applies meanwhile.
	hold bool
}

type keyState struct {
	dims [NumDimensions]dimState
	// pending are reports of windows that ended before they were reported.
	pending []*berryv1.QuotaReport
}

type dimState struct {
	window  int64
	balance int64 // credit held for window; negative: debt
	granted bool  // credit for window has come (or, standalone, been taken)
	// since the last report
	consumed, demand int64
	used             int64 // this edge's consumption in window
	lastUse          time.Time
	returned         bool
}

// SetStandalone makes the ledger grant itself every limit per window: a single edge
// is the whole fleet.
func (l *Ledger) SetStandalone(on bool) {
	l.mu.Lock()
	l.self = on
	l.mu.Unlock()
}

// SetMode sets the settings' quota_when_disconnected.
func (l *Ledger) SetMode(mode string) {
	l.mu.Lock()
	l.mode = mode
	l.mu.Unlock()
}

// Ticket is an admitted request's hold on its key's limits, settled when it ends.
// The zero Ticket holds nothing.
type Ticket struct {
	ks       *keyState
	key      string
	limits   Limits
	windows  [NumDimensions]int64
	reserved Amounts
}

// Held reports whether the ticket holds anything to settle.
func (t *Ticket) Held() bool { return t.ks != nil }

// Rejection says why a request was refused; the zero value means admitted.
type Rejection struct {
	Dimension  Dimension
	RetryAfter time.Duration
	Refused    bool
}

// Admit takes want (its estimate) from key's credit for every limit it has, or
// refuses it, taking nothing. now is the local clock.
func (l *Ledger) Admit(key string, lim *Limits, now time.Time, want Amounts) (Ticket, Rejection) {
	l.mu.Lock()
	defer l.mu.Unlock()
	ks := l.state(key)
	cp := now.Add(l.offset)
	t := Ticket{ks: ks, key: key, limits: *lim, reserved: want}
	disconnected := !l.self && (l.hold || now.Sub(l.lastGrant) > Disconnected)
	for d := range NumDimensions {
		if lim[d] <= 0 {
			continue
		}
		s := &ks.dims[d]
		w, end := d.Window(cp)
		l.roll(ks, key, d, w)
		t.windows[d] = w
		need := want.of(d.Kind())
		if l.self && !s.granted {
			s.balance, s.granted = lim[d], true
		}
		ok := false
		switch {
		case s.balance >= need || need <= 0:
			ok = true
		case d.Kind() != KindRequests && s.balance > 0:
			// Part of a token or cost reservation on credit: reservations are
			// estimates, settled to the real usage, and credit split over edges in
			// pieces smaller than one would otherwise sit unused on each of them.
			ok = true
		case !s.granted && s.used == 0 && !disconnected:
			ok = true // the starting share: one request on credit until a grant comes
		case disconnected:
			switch l.mode {
			case config.QuotaOpen:
				ok = true
			case config.QuotaClosed:
			default:
				ok = s.used+need <= lim[d]/int64(max(l.edges, 1))
			}
		}
		if !ok {
			for e := range NumDimensions {
				if lim[e] > 0 {
					ks.dims[e].demand += want.of(e.Kind())
					ks.dims[e].lastUse = now
				}
			}
			retry := max(end.Sub(cp), time.Second)
			if !s.granted && !disconnected {
				retry = time.Second // no grant for this window yet: credit is likely on its way
			}
			return Ticket{}, Rejection{Dimension: d, RetryAfter: retry, Refused: true}
		}
	}
	for d := range NumDimensions {
		if lim[d] <= 0 {
			continue
		}
		s := &ks.dims[d]
		need := want.of(d.Kind())
		s.balance -= need
		s.consumed += need
		s.demand += need
		s.used += need
		s.lastUse = now
		s.returned = false
	}
	return t, Rejection{}
}

// Settle replaces what t reserved with what the request really took.
func (l *Ledger) Settle(t *Ticket, actual Amounts) {
	if t.ks == nil {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	for d := range NumDimensions {
		if t.limits[d] <= 0 {
			continue
		}
		delta := actual.of(d.Kind()) - t.reserved.of(d.Kind())
		if delta == 0 {
			continue
		}
		s := &t.ks.dims[d]
		if s.window != t.windows[d] {
			// The window ended meanwhile: the correction belongs to it.
			t.ks.pending = append(t.ks.pending, &berryv1.QuotaReport{Key: t.key, Dimension: d.proto(), Window: t.windows[d], Consumed: delta})
			continue
		}
		s.balance -= delta
		s.consumed += delta
		s.used += delta
	}
	t.ks = nil
}

// state returns key's state, creating it.
func (l *Ledger) state(key string) *keyState {
	ks := l.keys[key]
	if ks == nil {
		if l.keys == nil {
			l.keys = make(map[string]*keyState)
		}
		ks = &keyState{}
		l.keys[key] = ks
	}
	return ks
}

// roll moves dimension d of ks to window w, keeping what the old window has not
// reported yet.
func (l *Ledger) roll(ks *keyState, key string, d Dimension, w int64) {
	s := &ks.dims[d]
	if s.window == w {
		return
	}
	if w < s.window {
		return // a clock step back: stay in the later window
	}
	if s.consumed != 0 {
		ks.pending = append(ks.pending, &berryv1.QuotaReport{Key: key, Dimension: d.proto(), Window: s.window, Consumed: s.consumed, Demand: s.demand})
	}
	*s = dimState{window: w, lastUse: s.lastUse}
}

// Report returns what changed since the previous report, for the observation batch:
// per key and limit, the consumption and demand since then and the credit held; credit
// unused for ReturnAfter is handed back.
func (l *Ledger) Report(now time.Time) []*berryv1.QuotaReport {
	l.mu.Lock()
	defer l.mu.Unlock()
	cp := now.Add(l.offset)
	var out []*berryv1.QuotaReport
	for key, ks := range l.keys {
		out = append(out, ks.pending...)
		ks.pending = nil
		live := false
		for d := range NumDimensions {
			s := &ks.dims[d]
			if s.window == 0 && s.consumed == 0 && s.balance == 0 {
				continue
			}
			if w, _ := d.Window(cp); w != s.window {
				l.roll(ks, key, d, w)
				out = append(out, ks.pending...)
				ks.pending = nil
				continue
			}
			live = true
			ret := !l.self && s.balance > 0 && now.Sub(s.lastUse) > ReturnAfter && !s.returned
			if s.consumed == 0 && s.demand == 0 && !ret && s.balance == 0 {
				continue
			}
			out = append(out, &berryv1.QuotaReport{Key: key, Dimension: d.proto(), Window: s.window,
				Consumed: s.consumed, Demand: s.demand, Balance: s.balance, Returned: ret})
			s.consumed, s.demand = 0, 0
			if ret {
				s.balance, s.returned = 0, true
			}
		}
		if !live && len(ks.pending) == 0 {
			delete(l.keys, key)
		}
	}
	if l.self {
		return nil // nobody to report to; kept only to roll windows
	}
	return out
}

// Unreport takes back reports that were never sent (the stream broke first): their
// consumption and demand go in the next report, so the control plane still counts
// them once.
func (l *Ledger) Unreport(reps []*berryv1.QuotaReport) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, r := range reps {
		d := Dimension(r.GetDimension()) - 1
		if d < 0 || d >= NumDimensions || r.GetConsumed() == 0 && r.GetDemand() == 0 {
			continue
		}
		ks := l.state(r.GetKey())
		s := &ks.dims[d]
		if s.window != r.GetWindow() {
			ks.pending = append(ks.pending, &berryv1.QuotaReport{Key: r.GetKey(), Dimension: r.GetDimension(),
				Window: r.GetWindow(), Consumed: r.GetConsumed(), Demand: r.GetDemand()})
			continue
		}
		s.consumed += r.GetConsumed()
		s.demand += r.GetDemand()
	}
}

// Apply adds a grants message's credit. Messages of one control-plane instance are
// applied once each, in order; a new instance starts over.
func (l *Ledger) Apply(g *berryv1.QuotaGrants, now time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if g.GetInstance() == l.instance && g.GetSeq() <= l.seq {
		return
	}
	l.instance, l.seq, l.lastGrant = g.GetInstance(), g.GetSeq(), now
	l.hold = g.GetHold()
	if ms := g.GetNowUnixMs(); ms > 0 {
		l.offset = time.UnixMilli(ms).Sub(now)
	}
	if n := g.GetEdges(); n > 0 {
		l.edges = int(n)
	}
	for _, gr := range g.GetGrants() {
		d := Dimension(gr.GetDimension()) - 1
		if d < 0 || d >= NumDimensions {
			continue
		}
		ks := l.state(gr.GetKey())
		l.roll(ks, gr.GetKey(), d, gr.GetWindow())
		s := &ks.dims[d]
		if s.window != gr.GetWindow() {
			continue // credit for a window that is over here
		}
		s.balance += gr.GetCredit()
		s.granted = true
		s.returned = false
		s.lastUse = now // credit just granted follows demand: not idle
	}
}

// Connected tells the ledger its stream to the control plane is up (now): until
// Disconnected passes without a grant, the edge counts as connected.
func (l *Ledger) Connected(now time.Time) {
	l.mu.Lock()
	l.lastGrant, l.hold = now, false
	l.mu.Unlock()
}

// Applied names the last grants message applied, for the observation batch.
func (l *Ledger) Applied() (instance string, seq uint64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.instance, l.seq
}
