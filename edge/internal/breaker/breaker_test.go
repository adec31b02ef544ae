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
	}
	tests := []struct {
		name  string
		steps []step
	}{
		{"opens at threshold", []step{
			{"fail", 0, false, Closed}, {"fail", 0, false, Closed}, {"fail", 0, false, Open},
			{"acquire", time.Second, false, Open},
		}},
		{"success resets the count", []step{
			{"fail", 0, false, Closed}, {"fail", 0, false, Closed}, {"ok", 0, false, Closed},
			{"fail", 0, false, Closed}, {"fail", 0, false, Closed}, {"acquire", 0, true, Closed},
		}},
		{"half-open lets one trial through and closes on success", []step{
			{"fail", 0, false, Closed}, {"fail", 0, false, Closed}, {"fail", 0, false, Open},
			{"acquire", 10 * time.Second, true, HalfOpen}, {"acquire", 10 * time.Second, false, HalfOpen},
			{"ok", 10 * time.Second, false, Closed}, {"acquire", 10 * time.Second, true, Closed},
		}},
		{"failed trial reopens for a full timeout", []step{
			{"fail", 0, false, Closed}, {"fail", 0, false, Closed}, {"fail", 0, false, Open},
			{"acquire", 10 * time.Second, true, HalfOpen}, {"fail", 10 * time.Second, false, Open},
			{"acquire", 15 * time.Second, false, Open}, {"acquire", 20 * time.Second, true, HalfOpen},
		}},
		{"trip opens a closed breaker at once, for a full timeout", []step{
			{"fail", 0, false, Closed}, {"trip", time.Second, false, Open},
			{"acquire", 10 * time.Second, false, Open}, {"acquire", 11 * time.Second, true, HalfOpen},
			{"ok", 11 * time.Second, false, Closed},
		}},
		{"trip restarts the timeout of an open breaker", []step{
			{"fail", 0, false, Closed}, {"fail", 0, false, Closed}, {"fail", 0, false, Open},
			{"trip", 5 * time.Second, false, Open}, {"acquire", 12 * time.Second, false, Open},
			{"acquire", 15 * time.Second, true, HalfOpen},
		}},
		{"released trial can be claimed again", []step{
			{"fail", 0, false, Closed}, {"fail", 0, false, Closed}, {"fail", 0, false, Open},
			{"acquire", 10 * time.Second, true, HalfOpen}, {"release", 10 * time.Second, false, HalfOpen},
			{"acquire", 10 * time.Second, true, HalfOpen},
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var b Breaker
			b.Configure(3, 10*time.Second)
			for i, s := range tc.steps {
				now := t0.Add(s.at)
				switch s.op {
				case "fail":
					b.Failure(now)
				case "ok":
					b.Success()
				case "release":
					b.Release()
				case "trip":
					b.Trip(now)
				case "acquire":
					if got := b.Acquire(now); got != s.wantOK {
						t.Fatalf("step %d: Acquire = %v, want %v", i, got, s.wantOK)
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
	for range DefaultThreshold - 1 {
		b.Failure(now)
	}
	if !b.Available(now) {
		t.Fatal("opened before the default threshold")
	}
	b.Failure(now)
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
	b.Failure(now)
	var got atomic.Int32
	var wg sync.WaitGroup
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if b.Acquire(now.Add(time.Second)) {
				got.Add(1)
			}
		}()
	}
	wg.Wait()
	if got.Load() != 1 {
		t.Fatalf("%d concurrent trials got through, want 1", got.Load())
	}
}
