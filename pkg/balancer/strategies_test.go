package balancer

import (
	"math"
	"sync"
	"testing"
)

func mustNew(t *testing.T, name string) Strategy {
	t.Helper()
	s, err := New(name)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// checkPermutation fails when Order lost or duplicated a candidate.
func checkPermutation(t *testing.T, c []Candidate, n int) {
	t.Helper()
	seen := make(map[int]bool, n)
	for _, x := range c {
		seen[x.Index] = true
	}
	if len(seen) != n || len(c) != n {
		t.Fatalf("Order lost or duplicated a candidate: %v", c)
	}
}

func TestFirstPickDistribution(t *testing.T) {
	tests := []struct {
		strategy string
		weights  []float64
		want     []float64 // share of first picks
	}{
		{"weighted_random", []float64{0.6, 0.3, 0.1}, []float64{0.6, 0.3, 0.1}},
		{"random", []float64{0.6, 0.3, 0.1}, []float64{1. / 3, 1. / 3, 1. / 3}},
		{"random", []float64{1, 1, 1, 1}, []float64{0.25, 0.25, 0.25, 0.25}},
	}
	for _, tc := range tests {
		t.Run(tc.strategy, func(t *testing.T) {
			s := mustNew(t, tc.strategy)
			const draws = 10000
			first := make([]int, len(tc.weights))
			c := make([]Candidate, len(tc.weights))
			for range draws {
				for i, w := range tc.weights {
					c[i] = Candidate{Index: i, Weight: w}
				}
				s.Order(c)
				checkPermutation(t, c, len(tc.weights))
				first[c[0].Index]++
			}
			for i, w := range tc.want {
				got := float64(first[i]) / draws
				// 5 standard deviations of a binomial proportion: ~1 in 10^6 false failures.
				tol := 5 * math.Sqrt(w*(1-w)/draws)
				if math.Abs(got-w) > tol {
					t.Errorf("backend %d first %.3f of the time, want %.3f ± %.3f", i, got, w, tol)
				}
			}
		})
	}
}

func TestRoundRobinIsFairUnderConcurrency(t *testing.T) {
	s := mustNew(t, "round_robin")
	const workers, per, n = 8, 3000, 3
	var mu sync.Mutex
	first := make([]int, n)
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			local := make([]int, n)
			c := make([]Candidate, n)
			for range per {
				for i := range c {
					c[i] = Candidate{Index: i, Weight: 1}
				}
				s.Order(c)
				local[c[0].Index]++
				// The failover order continues the rotation.
				for i := 1; i < n; i++ {
					if c[i].Index != (c[0].Index+i)%n {
						t.Errorf("order %v is not a rotation", c)
						return
					}
				}
			}
			mu.Lock()
			for i := range local {
				first[i] += local[i]
			}
			mu.Unlock()
		}()
	}
	wg.Wait()
	// An atomic counter gives exactly equal shares, whatever the interleaving.
	for i, got := range first {
		if got != workers*per/n {
			t.Errorf("backend %d first %d times, want exactly %d", i, got, workers*per/n)
		}
	}
}

func TestRoundRobinFollowsTheAvailableSet(t *testing.T) {
	s := mustNew(t, "round_robin")
	// Backend 1 became unavailable: the rotation goes on over 0 and 2 only, evenly.
	counts := map[int]int{}
	for range 1000 {
		c := []Candidate{{Index: 0}, {Index: 2}}
		s.Order(c)
		counts[c[0].Index]++
	}
	if counts[0] != 500 || counts[2] != 500 {
		t.Fatalf("first picks %v, want 500 each", counts)
	}
}

func TestFailoverNeverSkipsAHigherTier(t *testing.T) {
	s := mustNew(t, "failover")
	tests := []struct {
		name  string
		prios []int32
	}{
		{"three tiers", []int32{3, 1, 2}},
		{"two primaries", []int32{2, 1, 1, 2}},
		{"one left", []int32{5}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			firstOfTier := map[int]int{}
			for range 5000 {
				c := make([]Candidate, len(tc.prios))
				for i, p := range tc.prios {
					c[i] = Candidate{Index: i, Priority: p, Weight: 1}
				}
				s.Order(c)
				checkPermutation(t, c, len(tc.prios))
				for i := 1; i < len(c); i++ {
					if c[i].Priority < c[i-1].Priority {
						t.Fatalf("order %v puts a lower tier before a higher one", c)
					}
				}
				firstOfTier[c[0].Index]++
			}
			if tc.name == "two primaries" {
				// Both priority-1 backends share the load by weight (1:1).
				for _, i := range []int{1, 2} {
					if got := float64(firstOfTier[i]) / 5000; math.Abs(got-0.5) > 5*math.Sqrt(0.25/5000) {
						t.Errorf("primary %d first %.3f of the time, want 0.5", i, got)
					}
				}
			}
		})
	}
}

func TestLeastLatency(t *testing.T) {
	s := mustNew(t, "least_latency")
	tests := []struct {
		name  string
		cands []Candidate
		first int   // expected first index, -1 for "any of want"
		want  []int // acceptable firsts when first is -1
	}{
		{"fastest first", []Candidate{{Index: 0, Latency: 0.3}, {Index: 1, Latency: 0.1}, {Index: 2, Latency: 0.2}}, 1, nil},
		{"unexplored idle is explored", []Candidate{{Index: 0, Latency: 0.1}, {Index: 1}}, 1, nil},
		{"unexplored busy is not flooded", []Candidate{{Index: 0, Latency: 0.1}, {Index: 1, InFlight: 1}}, 0, nil},
		{"load counts", []Candidate{{Index: 0, Latency: 0.1, InFlight: 9}, {Index: 1, Latency: 0.2}}, 1, nil},
		{"cold start spreads", []Candidate{{Index: 0}, {Index: 1}, {Index: 2}}, -1, []int{0, 1, 2}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			seen := map[int]bool{}
			for range 300 {
				c := append([]Candidate(nil), tc.cands...)
				s.Order(c)
				checkPermutation(t, c, len(tc.cands))
				seen[c[0].Index] = true
				if tc.first >= 0 && c[0].Index != tc.first {
					t.Fatalf("first = %d, want %d (order %v)", c[0].Index, tc.first, c)
				}
			}
			for _, w := range tc.want {
				if !seen[w] {
					t.Errorf("backend %d never went first in 300 cold-start orders", w)
				}
			}
		})
	}
}

func TestOrderDoesNotAllocate(t *testing.T) {
	for _, name := range Names() {
		s := mustNew(t, name)
		c := []Candidate{{Index: 0, Weight: 1, Latency: 0.2}, {Index: 1, Weight: 2, Priority: 1}, {Index: 2, Weight: 3, Latency: 0.1}}
		if n := testing.AllocsPerRun(100, func() { s.Order(c) }); n != 0 {
			t.Errorf("%s: Order allocates %.0f times", name, n)
		}
	}
}

func BenchmarkOrder(b *testing.B) {
	for _, name := range Names() {
		b.Run(name, func(b *testing.B) {
			s, _ := New(name)
			c := []Candidate{{Index: 0, Weight: 1, Latency: 0.2}, {Index: 1, Weight: 2, Priority: 1}, {Index: 2, Weight: 3, Latency: 0.1}}
			b.ReportAllocs()
			for b.Loop() {
				s.Order(c)
			}
		})
	}
}
