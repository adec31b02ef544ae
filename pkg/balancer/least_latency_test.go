package balancer

import "testing"

// Near-equal backends share the first place (no herding); a clearly faster one keeps it.
func TestLeastLatencyHerdBand(t *testing.T) {
	s := mustNew(t, "least_latency")
	tests := []struct {
		name   string
		cands  []Candidate
		firsts []int // every one must go first sometimes, and nothing else
	}{
		{"within the band: shared", []Candidate{{Index: 0, Latency: 0.100}, {Index: 1, Latency: 0.105}, {Index: 2, Latency: 0.5}}, []int{0, 1}},
		{"three within the band", []Candidate{{Index: 0, Latency: 0.100}, {Index: 1, Latency: 0.104}, {Index: 2, Latency: 0.108}, {Index: 3, Latency: 0.3}}, []int{0, 1, 2}},
		{"outside the band: the faster", []Candidate{{Index: 0, Latency: 0.100}, {Index: 1, Latency: 0.120}}, []int{0}},
		{"load pushes out of the band", []Candidate{{Index: 0, Latency: 0.100}, {Index: 1, Latency: 0.100, InFlight: 1}}, []int{0}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			seen := map[int]int{}
			for range 400 {
				c := append([]Candidate(nil), tc.cands...)
				s.Order(c)
				checkPermutation(t, c, len(tc.cands))
				seen[c[0].Index]++
				for i := 2; i < len(c); i++ {
					if c[i].Latency < c[1].Latency && c[1].InFlight == 0 && c[i].InFlight == 0 {
						t.Fatalf("failover order not fastest-first after the first: %v", c)
					}
				}
			}
			want := map[int]bool{}
			for _, f := range tc.firsts {
				want[f] = true
				if seen[f] == 0 {
					t.Errorf("backend %d never went first in 400 orders (%v)", f, seen)
				}
			}
			for i, n := range seen {
				if !want[i] {
					t.Errorf("backend %d went first %d times; want only %v", i, n, tc.firsts)
				}
			}
		})
	}
}
