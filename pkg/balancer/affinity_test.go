package balancer

import (
	"fmt"
	"math"
	"testing"
)

func cands(weights ...float64) []Candidate {
	out := make([]Candidate, len(weights))
	for i, w := range weights {
		out[i] = Candidate{Index: i, Weight: w, Seed: HashKey(fmt.Appendf(nil, "provider-%d/model", i))}
	}
	return out
}

func pinned(cs []Candidate, key string) int {
	Pin(cs, HashKey([]byte(key)))
	return cs[0].Index
}

func TestPinIsStableAndOrderIndependent(t *testing.T) {
	for k := range 200 {
		key := fmt.Sprint("session-", k)
		a := pinned(cands(1, 1, 1, 1), key)
		reversed := cands(1, 1, 1, 1)
		for i, j := 0, len(reversed)-1; i < j; i, j = i+1, j-1 {
			reversed[i], reversed[j] = reversed[j], reversed[i]
		}
		if b := pinned(reversed, key); a != b {
			t.Fatalf("key %q pinned to %d, and to %d with the candidates in another order", key, a, b)
		}
	}
}

func TestPinRepinsOnlyTheMissingBackendsKeys(t *testing.T) {
	moved, lost := 0, 0
	for k := range 2000 {
		key := fmt.Sprint("session-", k)
		all := pinned(cands(1, 1, 1, 1), key)
		without := cands(1, 1, 1, 1)
		without = append(without[:2], without[3:]...) // backend 2 is down
		got := pinned(without, key)
		if all == 2 {
			lost++
			continue
		}
		if got != all {
			moved++
		}
	}
	if moved != 0 {
		t.Errorf("%d keys of healthy backends moved when another backend left", moved)
	}
	if lost == 0 {
		t.Error("no key was pinned to backend 2; the test proves nothing")
	}
}

func TestPinSpreadsByWeight(t *testing.T) {
	counts := make([]int, 3)
	const n = 30000
	for k := range n {
		counts[pinned(cands(1, 2, 1), fmt.Sprint("user-", k))]++
	}
	for i, want := range []float64{0.25, 0.5, 0.25} {
		if got := float64(counts[i]) / n; math.Abs(got-want) > 0.02 {
			t.Errorf("backend %d got %.3f of keys, want %.2f±0.02 (counts %v)", i, got, want, counts)
		}
	}
}

func TestPinKeepsTheFirstTierAndTheRestInOrder(t *testing.T) {
	for k := range 100 {
		cs := cands(1, 1, 1, 1)
		cs[2].Priority, cs[3].Priority = 1, 1
		Pin(cs, HashKey(fmt.Append(nil, k)))
		if cs[0].Priority != 0 {
			t.Fatalf("pinned to a lower tier: %+v", cs)
		}
		if cs[2].Index != 2 || cs[3].Index != 3 {
			t.Fatalf("failover order behind the pinned backend changed: %+v", cs)
		}
	}
}

func TestPinAllocs(t *testing.T) {
	cs := cands(1, 2, 3, 4)
	if n := testing.AllocsPerRun(100, func() { Pin(cs, 42) }); n != 0 {
		t.Errorf("Pin allocates %v times", n)
	}
}
