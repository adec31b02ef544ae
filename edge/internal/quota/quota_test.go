package quota

import (
	"testing"
	"time"

	berryv1 "github.com/berry-gateway/berry/pkg/api/berry/v1"
	"github.com/berry-gateway/berry/pkg/config"
)

var t0 = time.Date(2026, 11, 29, 12, 0, 10, 0, time.UTC)

func rpm(n int64) *Limits { return &Limits{RequestsMinute: n} }

func grant(seq uint64, now time.Time, key string, d Dimension, credit int64) *berryv1.QuotaGrants {
	w, _ := d.Window(now)
	return &berryv1.QuotaGrants{Instance: "cp", Seq: seq, NowUnixMs: now.UnixMilli(), Edges: 2,
		Grants: []*berryv1.QuotaGrant{{Key: key, Dimension: d.proto(), Window: w, Credit: credit}}}
}

func admitN(l *Ledger, key string, lim *Limits, now time.Time, n int, want Amounts) int {
	ok := 0
	for range n {
		if _, r := l.Admit(key, lim, now, want); !r.Refused {
			ok++
		}
	}
	return ok
}

func TestAdmitAgainstCredit(t *testing.T) {
	var l Ledger
	l.Connected(t0)
	one := Amounts{Requests: 1}
	// The starting share: one request before any grant, then nothing — retry soon.
	if got := admitN(&l, "k", rpm(60), t0, 3, one); got != 1 {
		t.Fatalf("admitted %d before any grant, want 1", got)
	}
	if _, r := l.Admit("k", rpm(60), t0, one); r.RetryAfter != time.Second {
		t.Fatalf("Retry-After %v before the first grant, want 1s", r.RetryAfter)
	}
	l.Apply(grant(1, t0, "k", RequestsMinute, 5), t0)
	if got := admitN(&l, "k", rpm(60), t0, 10, one); got != 4 { // 5 credit − 1 debt
		t.Fatalf("admitted %d on 5 credit with 1 debt, want 4", got)
	}
	l.Apply(grant(1, t0, "k", RequestsMinute, 5), t0) // replayed: ignored
	if got := admitN(&l, "k", rpm(60), t0, 1, one); got != 0 {
		t.Fatal("a replayed grant was applied twice")
	}
	reps := l.Report(t0)
	if len(reps) != 1 || reps[0].GetConsumed() != 5 || reps[0].GetDemand() != 15 || reps[0].GetBalance() != 0 {
		t.Fatalf("report %v", reps)
	}
	if reps := l.Report(t0); len(reps) != 0 {
		t.Fatalf("a second report repeats: %v", reps)
	}
}

func TestSettleAndTokens(t *testing.T) {
	var l Ledger
	l.Connected(t0)
	lim := &Limits{TokensMinute: 1000, CostDay: 1_000_000}
	l.Apply(&berryv1.QuotaGrants{Instance: "cp", Seq: 1, NowUnixMs: t0.UnixMilli(), Grants: []*berryv1.QuotaGrant{
		{Key: "k", Dimension: TokensMinute.proto(), Window: func() int64 { w, _ := TokensMinute.Window(t0); return w }(), Credit: 1000},
		{Key: "k", Dimension: CostDay.proto(), Window: func() int64 { w, _ := CostDay.Window(t0); return w }(), Credit: 1_000_000},
	}}, t0)
	tk, r := l.Admit("k", lim, t0, Amounts{Requests: 1, Tokens: 600, CostMicroUSD: 10})
	if r.Refused {
		t.Fatal(r)
	}
	// 400 left: a second 600 is admitted on what is left (credit goes negative)…
	tk2, r := l.Admit("k", lim, t0, Amounts{Requests: 1, Tokens: 600})
	if r.Refused {
		t.Fatalf("second reservation: %+v", r)
	}
	// …and a third finds no credit.
	if _, r := l.Admit("k", lim, t0, Amounts{Requests: 1, Tokens: 600}); !r.Refused || r.Dimension != TokensMinute {
		t.Fatalf("third reservation: %+v", r)
	}
	l.Settle(&tk, Amounts{Requests: 1, Tokens: 100, CostMicroUSD: 3})
	l.Settle(&tk2, Amounts{Requests: 1, Tokens: 100})
	if _, r := l.Admit("k", lim, t0, Amounts{Requests: 1, Tokens: 600}); r.Refused {
		t.Fatalf("after settling both to 100 tokens, 600 more should fit: %+v", r)
	}
	for _, rep := range l.Report(t0) {
		if rep.GetDimension() == TokensMinute.proto() && (rep.GetConsumed() != 800 || rep.GetBalance() != 200) {
			t.Errorf("tokens report %v", rep)
		}
	}
}

func TestWindowRollover(t *testing.T) {
	var l Ledger
	l.Connected(t0)
	l.Apply(grant(1, t0, "k", RequestsMinute, 10), t0)
	admitN(&l, "k", rpm(10), t0, 3, Amounts{Requests: 1})
	next := t0.Add(time.Minute)
	l.Connected(next)
	// Old credit is gone; the new window starts with the starting share.
	if got := admitN(&l, "k", rpm(10), next, 5, Amounts{Requests: 1}); got != 1 {
		t.Fatalf("admitted %d in a new window before its grant", got)
	}
	w0, _ := RequestsMinute.Window(t0)
	w1, _ := RequestsMinute.Window(next)
	var old, cur int64
	for _, rep := range l.Report(next) {
		switch rep.GetWindow() {
		case w0:
			old += rep.GetConsumed()
		case w1:
			cur += rep.GetConsumed()
		}
	}
	if old != 3 || cur != 1 {
		t.Fatalf("reported %d for the old window and %d for the new, want 3 and 1", old, cur)
	}
}

func TestReturnsIdleCredit(t *testing.T) {
	var l Ledger
	l.Connected(t0)
	l.Apply(grant(1, t0, "k", RequestsMinute, 10), t0)
	admitN(&l, "k", rpm(60), t0, 2, Amounts{Requests: 1})
	l.Report(t0)
	later := t0.Add(ReturnAfter + time.Second)
	l.Connected(later) // still connected: no grant needed to say so
	reps := l.Report(later)
	if len(reps) != 1 || !reps[0].GetReturned() || reps[0].GetBalance() != 8 {
		t.Fatalf("idle credit not returned: %v", reps)
	}
	if got := admitN(&l, "k", rpm(60), later, 1, Amounts{Requests: 1}); got != 0 {
		t.Fatal("returned credit was still spent")
	}
}

func TestDisconnectedModes(t *testing.T) {
	for _, tt := range []struct {
		mode string
		want int
	}{
		{config.QuotaShare, 30}, {"", 30}, {config.QuotaOpen, 100}, {config.QuotaClosed, 0},
	} {
		t.Run(tt.mode, func(t *testing.T) {
			var l Ledger
			l.SetMode(tt.mode)
			l.Apply(grant(1, t0, "other", RequestsMinute, 1), t0) // learns: 2 edges
			cut := t0.Add(Disconnected + time.Second)
			if got := admitN(&l, "k", rpm(60), cut, 100, Amounts{Requests: 1}); got != tt.want {
				t.Fatalf("admitted %d while disconnected, want %d", got, tt.want)
			}
		})
	}
}

func TestStandaloneGrantsItself(t *testing.T) {
	var l Ledger
	l.SetStandalone(true)
	if got := admitN(&l, "k", rpm(5), t0, 9, Amounts{Requests: 1}); got != 5 {
		t.Fatalf("admitted %d of a limit of 5", got)
	}
	if got := admitN(&l, "k", rpm(5), t0.Add(time.Minute), 9, Amounts{Requests: 1}); got != 5 {
		t.Fatalf("admitted %d in the next window", got)
	}
	if reps := l.Report(t0); reps != nil {
		t.Fatalf("standalone reports %v", reps)
	}
}

func TestWindows(t *testing.T) {
	at := time.Date(2026, 12, 31, 23, 59, 30, 0, time.UTC)
	for _, tt := range []struct {
		d   Dimension
		end time.Time
	}{
		{RequestsMinute, time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC)},
		{RequestsHour, time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC)},
		{CostDay, time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC)},
		{CostMonth, time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC)},
	} {
		w, end := tt.d.Window(at)
		w2, _ := tt.d.Window(end)
		if !end.Equal(tt.end) || w2 != w+1 {
			t.Errorf("%d: window %d ends %v (next %d), want end %v", tt.d, w, end, w2, tt.end)
		}
	}
	if w, _ := CostMonth.Window(at); w != 2026*12+11 {
		t.Errorf("month window %d", w)
	}
}

func TestAdmitAllocs(t *testing.T) {
	var l Ledger
	l.SetStandalone(true)
	lim := &Limits{RequestsMinute: 1 << 40, TokensMinute: 1 << 50}
	l.Admit("k", lim, t0, Amounts{Requests: 1, Tokens: 10})
	if n := testing.AllocsPerRun(100, func() {
		tk, _ := l.Admit("k", lim, t0, Amounts{Requests: 1, Tokens: 10})
		l.Settle(&tk, Amounts{Requests: 1, Tokens: 7})
	}); n != 0 {
		t.Errorf("Admit+Settle allocate %v times", n)
	}
}

func TestUnreportCountsOnce(t *testing.T) {
	var l Ledger
	l.Connected(t0)
	l.Apply(grant(1, t0, "k", RequestsMinute, 10), t0)
	admitN(&l, "k", rpm(60), t0, 3, Amounts{Requests: 1})
	lost := l.Report(t0)
	l.Unreport(lost) // the batch never left
	admitN(&l, "k", rpm(60), t0, 1, Amounts{Requests: 1})
	reps := l.Report(t0)
	if len(reps) != 1 || reps[0].GetConsumed() != 4 {
		t.Fatalf("after an unsent batch: %v", reps)
	}
}

func TestHoldAppliesTheDisconnectedRule(t *testing.T) {
	var l Ledger
	l.Connected(t0)
	g := grant(1, t0, "other", RequestsMinute, 1) // 2 edges
	g.Hold = true
	l.Apply(g, t0)
	if got := admitN(&l, "k", rpm(60), t0, 100, Amounts{Requests: 1}); got != 30 {
		t.Fatalf("admitted %d while the control plane holds, want 30 (60 ÷ 2 edges)", got)
	}
	l.Apply(&berryv1.QuotaGrants{Instance: "cp", Seq: 2, NowUnixMs: t0.UnixMilli()}, t0)
	if got := admitN(&l, "k", rpm(60), t0, 1, Amounts{Requests: 1}); got != 0 {
		t.Fatal("admitted without credit once the hold ended")
	}
}

// Windows are the control plane's: an edge whose clock is an hour off still counts
// the minute the control plane is in.
func TestWindowsFollowTheControlPlanesClock(t *testing.T) {
	var l Ledger
	local := t0.Add(-time.Hour) // this edge's clock is an hour behind
	l.Apply(grant(1, t0, "k", RequestsMinute, 5), local)
	if got := admitN(&l, "k", rpm(60), local, 10, Amounts{Requests: 1}); got != 5 {
		t.Fatalf("admitted %d on 5 credit for the control plane's minute", got)
	}
	w, _ := RequestsMinute.Window(t0)
	for _, r := range l.Report(local) {
		if r.GetWindow() != w {
			t.Fatalf("reported window %d, the control plane's is %d", r.GetWindow(), w)
		}
	}
}
