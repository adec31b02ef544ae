package ratelimit

import (
	"testing"
	"time"
)

func TestLimiter(t *testing.T) {
	t0 := time.Unix(6000, 0) // on a minute boundary
	type call struct {
		at   time.Duration
		want bool
	}
	tests := []struct {
		name   string
		limits Limits
		calls  []call
	}{
		{"unlimited", Limits{}, []call{{0, true}, {0, true}, {0, true}}},
		{"per minute", Limits{PerMinute: 2}, []call{{0, true}, {time.Second, true}, {2 * time.Second, false}}},
		// At 1m30s the previous minute (2 requests) still weighs half: 1 + 0 + 1 > 2 fails
		// only when... 2*0.5 + 0 + 1 = 2 fits.
		{"slides", Limits{PerMinute: 2}, []call{{0, true}, {time.Second, true}, {90 * time.Second, true}, {91 * time.Second, false}}},
		{"boundary burst is bounded", Limits{PerMinute: 2}, []call{{58 * time.Second, true}, {59 * time.Second, true}, {61 * time.Second, false}}},
		{"rejections are free", Limits{PerMinute: 1}, []call{{0, true}, {10 * time.Second, false}, {20 * time.Second, false}, {120 * time.Second, true}}},
		{"hour applies too", Limits{PerMinute: 10, PerHour: 2}, []call{{0, true}, {0, true}, {0, false}, {2 * time.Hour, true}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var l Limiter
			l.Configure(tc.limits)
			for i, c := range tc.calls {
				ok, wait := l.Allow(t0.Add(c.at))
				if ok != c.want {
					t.Fatalf("call %d at %v: Allow = %v, want %v", i, c.at, ok, c.want)
				}
				if !ok && wait < time.Second {
					t.Fatalf("call %d: wait %v, want ≥ 1s", i, wait)
				}
			}
		})
	}
}

func TestRetryAfterIsEnough(t *testing.T) {
	t0 := time.Unix(6000, 0)
	var l Limiter
	l.Configure(Limits{PerMinute: 3})
	now := t0
	for range 3 {
		if ok, _ := l.Allow(now); !ok {
			t.Fatal("rejected within the limit")
		}
	}
	ok, wait := l.Allow(now.Add(10 * time.Second))
	if ok {
		t.Fatal("admitted over the limit")
	}
	if ok, _ := l.Allow(now.Add(10*time.Second + wait)); !ok {
		t.Fatalf("still rejected after the advised wait %v", wait)
	}
}

func TestRegistryKeepsCounts(t *testing.T) {
	var r Registry
	ls := r.Sync([]string{"a", "b"}, []Limits{{PerMinute: 1}, {}})
	if ls[1] != nil {
		t.Fatal("limiter for an unlimited key")
	}
	now := time.Unix(6000, 0)
	ls[0].Allow(now)
	ls2 := r.Sync([]string{"a"}, []Limits{{PerMinute: 1}})
	if ls2[0] != ls[0] {
		t.Fatal("a reload replaced the limiter")
	}
	if ok, _ := ls2[0].Allow(now); ok {
		t.Fatal("a reload reset the quota")
	}
}
