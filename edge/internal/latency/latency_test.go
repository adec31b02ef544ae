package latency

import (
	"math"
	"testing"
	"time"
)

func TestPeakEWMA(t *testing.T) {
	t0 := time.Unix(1000, 0)
	type sample struct {
		at time.Duration
		d  time.Duration
	}
	tests := []struct {
		name    string
		samples []sample
		at      time.Duration
		want    float64
	}{
		{"no samples", nil, 0, 0},
		{"first sample", []sample{{0, 200 * time.Millisecond}}, 0, 0.2},
		{"slower takes effect at once", []sample{{0, 100 * time.Millisecond}, {time.Second, 900 * time.Millisecond}}, time.Second, 0.9},
		// After one decay constant a faster sample has moved the estimate 1-1/e of the way.
		{"faster decays in", []sample{{0, time.Second}, {10 * time.Second, 0}}, 10 * time.Second, math.Exp(-1)},
		{"faster at the same instant changes nothing", []sample{{0, time.Second}, {0, 0}}, 0, 1},
		{"stale is unknown", []sample{{0, time.Second}}, 31 * time.Second, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var e Estimator
			for _, s := range tc.samples {
				e.Observe(s.d, t0.Add(s.at))
			}
			if got := e.Latency(t0.Add(tc.at)); math.Abs(got-tc.want) > 1e-9 {
				t.Fatalf("Latency = %v, want %v", got, tc.want)
			}
			if got := e.FirstToken(t0.Add(tc.at)); got != 0 {
				t.Fatalf("FirstToken = %v with no first-token samples", got)
			}
		})
	}
}

func TestFirstTokenIsSeparate(t *testing.T) {
	var e Estimator
	now := time.Unix(0, 0)
	e.ObserveFirstToken(50*time.Millisecond, now)
	e.Observe(2*time.Second, now)
	if got := e.FirstToken(now); got != 0.05 {
		t.Fatalf("FirstToken = %v, want 0.05", got)
	}
	if got := e.Latency(now); got != 2 {
		t.Fatalf("Latency = %v, want 2", got)
	}
}
