package fleetscore

import (
	"fmt"
	"math"
	"testing"
	"time"
)

var t0 = time.Unix(1_700_000_000, 0)

func TestMerge(t *testing.T) {
	type report struct {
		edge string
		ago  time.Duration
		obs  Observation[string]
	}
	tests := []struct {
		name    string
		reports []report
		backend string
		want    Score
		gone    bool
	}{
		{
			name:    "one edge alone sets the score",
			reports: []report{{"e1", 0, Observation[string]{Backend: "b", Latency: 2, TTFT: 0.5, Samples: 10, Requests: 10, ServerErrors: 1}}},
			backend: "b",
			want:    Score{Latency: 2, TTFT: 0.5, Weight: 10, Edges: 1, ErrorRate: 0.1, Requests: 10, ServerErrors: 1},
		},
		{
			name: "weighted by samples",
			reports: []report{
				{"e1", 0, Observation[string]{Backend: "b", Latency: 1, Samples: 30, Requests: 30}},
				{"e2", 0, Observation[string]{Backend: "b", Latency: 3, Samples: 10, Requests: 10}},
			},
			backend: "b",
			want:    Score{Latency: 1, Weight: 40, Edges: 2, Requests: 40},
		},
		{
			name: "one outlier edge with huge weight cannot dominate",
			reports: []report{
				{"e1", 0, Observation[string]{Backend: "b", Latency: 0.1, Samples: 10, Requests: 10}},
				{"e2", 0, Observation[string]{Backend: "b", Latency: 0.1, Samples: 10, Requests: 10}},
				{"e3", 0, Observation[string]{Backend: "b", Latency: 0.12, Samples: 10, Requests: 10}},
				{"e4", 0, Observation[string]{Backend: "b", Latency: 50, Samples: 1000, Requests: 1000}},
			},
			backend: "b",
			want:    Score{Latency: 0.12, Weight: 1030, Edges: 4, Requests: 1030},
		},
		{
			name: "stale contributions expire",
			reports: []report{
				{"e1", 30 * time.Second, Observation[string]{Backend: "b", Latency: 9, Samples: 100, Requests: 100, ServerErrors: 100}},
				{"e2", time.Second, Observation[string]{Backend: "b", Latency: 1, Samples: 5, Requests: 5}},
			},
			backend: "b",
			want:    Score{Latency: 1, Weight: 5, Edges: 1, Requests: 5},
		},
		{
			name:    "a backend nobody reports on any more disappears",
			reports: []report{{"e1", time.Minute, Observation[string]{Backend: "b", Latency: 1, Samples: 1}}},
			backend: "b",
			gone:    true,
		},
		{
			name:    "errors without latency still count",
			reports: []report{{"e1", 0, Observation[string]{Backend: "b", Requests: 4, ServerErrors: 4}}},
			backend: "b",
			want:    Score{ErrorRate: 1, Requests: 4, ServerErrors: 4},
		},
		{
			name: "4xx answers are the clients' fault: left out of the error rate",
			reports: []report{
				{"e1", 0, Observation[string]{Backend: "b", Requests: 10, ClientErrors: 6, ServerErrors: 1}},
				{"e2", 0, Observation[string]{Backend: "b", Requests: 10, ClientErrors: 2, NoAnswer: 3}},
			},
			backend: "b",
			want:    Score{ErrorRate: 4.0 / 12, Requests: 20, ClientErrors: 8, ServerErrors: 1, NoAnswer: 3},
		},
		{
			name:    "only 4xx answers: no error rate",
			reports: []report{{"e1", 0, Observation[string]{Backend: "b", Requests: 5, ClientErrors: 5}}},
			backend: "b",
			want:    Score{Requests: 5, ClientErrors: 5},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var m Merger[string]
			for _, r := range tt.reports {
				m.Observe(r.edge, t0.Add(-r.ago), []Observation[string]{r.obs})
			}
			_, scores := m.Scores(t0)
			got, ok := scores[tt.backend]
			if tt.gone {
				if ok {
					t.Fatalf("backend still scored: %+v", got)
				}
				return
			}
			if !ok || got != tt.want {
				t.Fatalf("score = %+v (present %v), want %+v", got, ok, tt.want)
			}
		})
	}
}

func TestDecayAndEpoch(t *testing.T) {
	var m Merger[string]
	m.Observe("e1", t0, []Observation[string]{{Backend: "b", Latency: 1, Samples: 8, Requests: 8, ServerErrors: 8}})
	m.Observe("e1", t0.Add(time.Second), []Observation[string]{{Backend: "b", Latency: 1, Samples: 0, Requests: 8}})
	e1, s := m.Scores(t0.Add(time.Second))
	// Weight 8 decays to 4; errors 8→4 over requests 8→4+8=12.
	if got := s["b"]; got.Weight != 4 || math.Abs(got.ErrorRate-4.0/12) > 1e-9 {
		t.Fatalf("after decay: %+v", got)
	}
	if e2, _ := m.Scores(t0.Add(time.Second)); e2 <= e1 {
		t.Fatalf("epoch did not go up: %d then %d", e1, e2)
	}
	m.RemoveEdge("e1")
	if _, s := m.Scores(t0.Add(time.Second)); len(s) != 0 {
		t.Fatalf("scores after RemoveEdge: %v", s)
	}
}

// BenchmarkObserve1000x20 measures how many observations one merger absorbs: each
// iteration is one batch of 20 backends from one of 1,000 edges.
func BenchmarkObserve1000x20(b *testing.B) {
	const edges, backends = 1000, 20
	ids := make([]string, edges)
	for i := range ids {
		ids[i] = fmt.Sprintf("edge-%d", i)
	}
	batch := make([]Observation[string], backends)
	for i := range batch {
		batch[i] = Observation[string]{Backend: fmt.Sprintf("backend-%d", i), Latency: 0.2, TTFT: 0.05, Samples: 10, Requests: 10}
	}
	var m Merger[string]
	now := t0
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		m.Observe(ids[i%edges], now, batch)
		i++
	}
	b.ReportMetric(float64(backends*b.N)/b.Elapsed().Seconds(), "obs/s")
}

// BenchmarkScores1000x20 is the cost of one merge over a full fleet.
func BenchmarkScores1000x20(b *testing.B) {
	const edges, backends = 1000, 20
	var m Merger[string]
	batch := make([]Observation[string], backends)
	for i := range batch {
		batch[i] = Observation[string]{Backend: fmt.Sprintf("backend-%d", i), Latency: 0.2, Samples: 10, Requests: 10}
	}
	for e := range edges {
		m.Observe(fmt.Sprintf("edge-%d", e), t0, batch)
	}
	b.ReportAllocs()
	for b.Loop() {
		m.Scores(t0)
	}
}

// Edges that stopped sampling a backend, and whose decayed weight fell far below the
// edge now measuring it, do not outvote it with their old estimates; once that edge
// stops too, its estimate (the heaviest) still stands.
func TestQuietEdgesDoNotOutvoteTheMeasuringOne(t *testing.T) {
	var m Merger[string]
	at := t0
	for _, e := range []string{"b", "c"} {
		m.Observe(e, at, []Observation[string]{{Backend: "x", Latency: 0.001, Samples: 8, Requests: 8}})
	}
	for range 8 { // b and c go on reporting, without samples
		at = at.Add(200 * time.Millisecond)
		for _, e := range []string{"b", "c"} {
			m.Observe(e, at, []Observation[string]{{Backend: "x", Latency: 0.001}})
		}
	}
	m.Observe("a", at, []Observation[string]{{Backend: "x", Latency: 0.4, Samples: 4, Requests: 4}})
	if _, s := m.Scores(at); s["x"].Latency != 0.4 {
		t.Fatalf("with a sampling: latency %v, want a's 0.4 (score %+v)", s["x"].Latency, s["x"])
	}
	at = at.Add(200 * time.Millisecond)
	for _, e := range []string{"a", "b", "c"} {
		l := 0.001
		if e == "a" {
			l = 0.4
		}
		m.Observe(e, at, []Observation[string]{{Backend: "x", Latency: l}})
	}
	if _, s := m.Scores(at); s["x"].Latency != 0.4 {
		t.Fatalf("after a's samples: latency %v, want 0.4 (score %+v)", s["x"].Latency, s["x"])
	}
}
