package breaker

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/berry-gateway/berry/pkg/config"
)

func TestBreakerLifecycle(t *testing.T) {
	t0 := time.Unix(1000, 0)
	type step struct {
		op        string // fail, ok, acquire, release, trip
		at        time.Duration
		wantOK    bool // for acquire
		wantState State
		// tk names the ticket: acquire keeps it under that name, fail, ok and release
		// hand it back (a named one may be handed back more than once, as a buggy or
		// late caller would). Unnamed, they use the last unnamed ticket acquired and
		// not yet used, or a ticket acquired on the spot.
		tk string
	}
	tests := []struct {
		name  string
		steps []step
	}{
		{"opens at threshold", []step{
			{"fail", 0, false, Closed, ""}, {"fail", 0, false, Closed, ""}, {"fail", 0, false, Open, ""},
			{"acquire", time.Second, false, Open, ""},
		}},
		{"success resets the count", []step{
			{"fail", 0, false, Closed, ""}, {"fail", 0, false, Closed, ""}, {"ok", 0, false, Closed, ""},
			{"fail", 0, false, Closed, ""}, {"fail", 0, false, Closed, ""}, {"acquire", 0, true, Closed, ""},
		}},
		{"half-open lets one trial through and closes on success", []step{
			{"fail", 0, false, Closed, ""}, {"fail", 0, false, Closed, ""}, {"fail", 0, false, Open, ""},
			{"acquire", 10 * time.Second, true, HalfOpen, ""}, {"acquire", 10 * time.Second, false, HalfOpen, ""},
			{"ok", 10 * time.Second, false, Closed, ""}, {"acquire", 10 * time.Second, true, Closed, ""},
		}},
		{"failed trial reopens for a full timeout", []step{
			{"fail", 0, false, Closed, ""}, {"fail", 0, false, Closed, ""}, {"fail", 0, false, Open, ""},
			{"acquire", 10 * time.Second, true, HalfOpen, ""}, {"fail", 10 * time.Second, false, Open, ""},
			{"acquire", 15 * time.Second, false, Open, ""}, {"acquire", 20 * time.Second, true, HalfOpen, ""},
		}},
		{"trip opens a closed breaker at once, for a full timeout", []step{
			{"fail", 0, false, Closed, ""}, {"trip", time.Second, false, Open, ""},
			{"acquire", 10 * time.Second, false, Open, ""}, {"acquire", 11 * time.Second, true, HalfOpen, ""},
			{"ok", 11 * time.Second, false, Closed, ""},
		}},
		{"trip restarts the timeout of an open breaker", []step{
			{"fail", 0, false, Closed, ""}, {"fail", 0, false, Closed, ""}, {"fail", 0, false, Open, ""},
			{"trip", 5 * time.Second, false, Open, ""}, {"acquire", 12 * time.Second, false, Open, ""},
			{"acquire", 15 * time.Second, true, HalfOpen, ""},
		}},
		{"released trial can be claimed again", []step{
			{"fail", 0, false, Closed, ""}, {"fail", 0, false, Closed, ""}, {"fail", 0, false, Open, ""},
			{"acquire", 10 * time.Second, true, HalfOpen, ""}, {"release", 10 * time.Second, false, HalfOpen, ""},
			{"acquire", 10 * time.Second, true, HalfOpen, ""},
		}},
		// Results count only in the generation that admitted them.
		{"a late success does not close a breaker that opened since", []step{
			{op: "acquire", wantOK: true, wantState: Closed, tk: "long"},
			{op: "fail", wantState: Closed}, {op: "fail", wantState: Closed}, {op: "fail", wantState: Open},
			{op: "ok", at: time.Second, wantState: Open, tk: "long"},
			{op: "acquire", at: time.Second, wantOK: false, wantState: Open},
		}},
		{"a late failure does not re-open a breaker that closed since", []step{
			{op: "acquire", wantOK: true, wantState: Closed, tk: "long"},
			{op: "trip", wantState: Open},
			{op: "acquire", at: 10 * time.Second, wantOK: true, wantState: HalfOpen, tk: "trial"},
			{op: "ok", at: 10 * time.Second, wantState: Closed, tk: "trial"},
			{op: "fail", at: 11 * time.Second, wantState: Closed, tk: "long"},
			// and it did not count: three more failures are needed to open
			{op: "fail", at: 11 * time.Second, wantState: Closed}, {op: "fail", at: 11 * time.Second, wantState: Closed},
			{op: "fail", at: 11 * time.Second, wantState: Open},
		}},
		{"a late success does not close a breaker that reopened", []step{
			{op: "acquire", wantOK: true, wantState: Closed, tk: "long"},
			{op: "trip", wantState: Open},
			{op: "ok", at: 10 * time.Second, wantState: HalfOpen, tk: "long"},
			{op: "acquire", at: 10 * time.Second, wantOK: true, wantState: HalfOpen},
		}},
		{"only the trial's holder ends the trial", []step{
			{op: "acquire", wantOK: true, wantState: Closed, tk: "old"},
			{op: "trip", wantState: Open},
			{op: "acquire", at: 10 * time.Second, wantOK: true, wantState: HalfOpen, tk: "trial"},
			{op: "release", at: 10 * time.Second, wantState: HalfOpen, tk: "old"},
			{op: "acquire", at: 10 * time.Second, wantOK: false, wantState: HalfOpen}, // no second trial
			{op: "fail", at: 10 * time.Second, wantState: HalfOpen, tk: "old"},
			{op: "ok", at: 10 * time.Second, wantState: Closed, tk: "trial"},
		}},
		{"a failed trial's late success does not close the next trial's breaker", []step{
			{op: "trip", wantState: Open},
			{op: "acquire", at: 10 * time.Second, wantOK: true, wantState: HalfOpen, tk: "first"},
			{op: "release", at: 10 * time.Second, wantState: HalfOpen, tk: "first"},
			{op: "acquire", at: 10 * time.Second, wantOK: true, wantState: HalfOpen, tk: "second"},
			{op: "ok", at: 10 * time.Second, wantState: HalfOpen, tk: "first"},
			{op: "fail", at: 10 * time.Second, wantState: Open, tk: "second"},
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var b Breaker
			b.Configure(3, 10*time.Second)
			tickets := map[string]Ticket{}
			ticket := func(i int, s step, now time.Time) Ticket {
				tk, ok := tickets[s.tk]
				if !ok {
					if tk, ok = b.Acquire(now); !ok {
						t.Fatalf("step %d (%s): no ticket to use", i, s.op)
					}
				}
				if s.tk == "" {
					delete(tickets, s.tk) // the unnamed one is used once
				}
				return tk
			}
			for i, s := range tc.steps {
				now := t0.Add(s.at)
				switch s.op {
				case "fail":
					b.Failure(ticket(i, s, now), now)
				case "ok":
					b.Success(ticket(i, s, now))
				case "release":
					b.Release(ticket(i, s, now))
				case "trip":
					b.Trip(now)
				case "acquire":
					tk, got := b.Acquire(now)
					if got != s.wantOK {
						t.Fatalf("step %d: Acquire = %v, want %v", i, got, s.wantOK)
					}
					if got {
						tickets[s.tk] = tk
					}
				}
				if got := b.State(now); got != s.wantState {
					t.Fatalf("step %d (%s): state %v, want %v", i, s.op, got, s.wantState)
				}
			}
		})
	}
}

func TestZeroValueUsesDefaults(t *testing.T) {
	const (
		DefaultThreshold = config.DefaultCircuitBreakerFailureThreshold
		DefaultTimeout   = config.DefaultCircuitBreakerTimeoutSeconds * time.Second
	)
	var b Breaker
	now := time.Unix(0, 0)
	fail := func() {
		tk, _ := b.Acquire(now)
		b.Failure(tk, now)
	}
	for range DefaultThreshold - 1 {
		fail()
	}
	if !b.Available(now) {
		t.Fatal("opened before the default threshold")
	}
	fail()
	if b.Available(now.Add(DefaultTimeout - time.Second)) {
		t.Fatal("available before the default timeout")
	}
	if !b.Available(now.Add(DefaultTimeout)) {
		t.Fatal("not available after the default timeout")
	}
}

func TestOneTrialUnderConcurrency(t *testing.T) {
	var b Breaker
	b.Configure(1, time.Second)
	now := time.Unix(0, 0)
	b.Trip(now)
	var got atomic.Int32
	var wg sync.WaitGroup
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, ok := b.Acquire(now.Add(time.Second)); ok {
				got.Add(1)
			}
		}()
	}
	wg.Wait()
	if got.Load() != 1 {
		t.Fatalf("%d concurrent trials got through, want 1", got.Load())
	}
}
