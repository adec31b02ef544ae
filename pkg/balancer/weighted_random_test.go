package balancer

import (
	"math"
	"testing"
)

func TestWeightedRandomDistribution(t *testing.T) {
	s, err := New("weighted_random")
	if err != nil {
		t.Fatal(err)
	}
	weights := []float64{0.6, 0.3, 0.1}
	const draws = 20000
	first := make([]int, len(weights))
	cands := make([]Candidate, len(weights))
	for range draws {
		for i, w := range weights {
			cands[i] = Candidate{Index: i, Weight: w}
		}
		s.Order(cands)
		first[cands[0].Index]++
		seen := map[int]bool{}
		for _, c := range cands {
			seen[c.Index] = true
		}
		if len(seen) != len(weights) {
			t.Fatalf("Order lost or duplicated a candidate: %v", cands)
		}
	}
	for i, w := range weights {
		got := float64(first[i]) / draws
		// 5 standard deviations of a binomial proportion: fails by chance ~1 in 10^6 runs.
		tol := 5 * math.Sqrt(w*(1-w)/draws)
		if math.Abs(got-w) > tol {
			t.Errorf("backend %d picked first %.3f of the time, want %.3f ± %.3f", i, got, w, tol)
		}
	}
}

func TestUnknownStrategy(t *testing.T) {
	if _, err := New("fastest"); err == nil {
		t.Fatal("New(fastest) succeeded")
	}
	if s, err := New(""); err != nil || s == nil {
		t.Fatalf("New(\"\") = %v, %v; want the default", s, err)
	}
}
