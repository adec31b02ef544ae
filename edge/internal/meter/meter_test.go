package meter

import (
	"sync"
	"testing"

	"github.com/berry-gateway/berry/pkg/config"
)

func TestMeterSumsPerKeyModelBackend(t *testing.T) {
	var m Meter
	a := config.BackendKey{Provider: "p", Model: "up"}
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 100 {
				m.Add("alice", "gpt", a, Usage{Input: 10, Output: 5, Cached: 2, Reasoning: 1, CostMicroUSD: 7})
			}
		})
	}
	wg.Wait()
	m.Add("bob", "gpt", a, Usage{Input: -1, Output: -1, Estimated: true})
	rows := m.Drain()
	if len(rows) != 2 {
		t.Fatalf("%d rows", len(rows))
	}
	for _, r := range rows {
		switch r.GetKey() {
		case "alice":
			if r.GetRequests() != 800 || r.GetInputTokens() != 8000 || r.GetOutputTokens() != 4000 || r.GetCachedTokens() != 1600 ||
				r.GetReasoningTokens() != 800 || r.GetCostMicroUsd() != 5600 || r.GetEstimated() != 0 {
				t.Errorf("alice: %v", r)
			}
		case "bob":
			if r.GetRequests() != 1 || r.GetInputTokens() != 0 || r.GetEstimated() != 1 {
				t.Errorf("bob: %v", r)
			}
		}
	}
	if len(m.Drain()) != 0 {
		t.Fatal("Drain did not start over")
	}
	m.Merge(rows)
	m.Add("alice", "gpt", a, Usage{Input: 1})
	for _, r := range m.Drain() {
		if r.GetKey() == "alice" && (r.GetRequests() != 801 || r.GetInputTokens() != 8001) {
			t.Errorf("merged alice: %v", r)
		}
	}
}

func TestMeterAddAllocs(t *testing.T) {
	var m Meter
	b := config.BackendKey{Provider: "p", Model: "up"}
	m.Add("k", "m", b, Usage{})
	if n := testing.AllocsPerRun(100, func() { m.Add("k", "m", b, Usage{Input: 1}) }); n != 0 {
		t.Errorf("Add of a known row allocates %v times", n)
	}
}
