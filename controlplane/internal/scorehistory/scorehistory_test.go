package scorehistory

import (
	"testing"
	"time"

	berryv1 "github.com/berry-gateway/berry/pkg/api/berry/v1"
	"github.com/berry-gateway/berry/pkg/config"
)

func scores(latency float64, backends ...string) *berryv1.FleetScores {
	fs := &berryv1.FleetScores{}
	for _, p := range backends {
		fs.Backends = append(fs.Backends, &berryv1.BackendScore{Provider: p, UpstreamModel: "m", LatencySeconds: latency})
	}
	return fs
}

func TestRingKeepsTheNewestInOrder(t *testing.T) {
	t0 := time.Unix(1_800_000_000, 0)
	for _, tc := range []struct {
		name  string
		adds  int
		since time.Duration // after t0
		want  []int         // seconds after t0 of the samples returned
	}{
		{"empty", 0, 0, nil},
		{"partly filled", 2, 0, []int{0, 1}},
		{"exactly full", 4, 0, []int{0, 1, 2, 3}},
		{"wrapped", 6, 0, []int{2, 3, 4, 5}},
		{"wrapped twice", 9, 0, []int{5, 6, 7, 8}},
		{"since", 6, 4 * time.Second, []int{4, 5}},
		{"since after all", 6, time.Minute, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := New(time.Second, 4*time.Second)
			if r.Span() != 4*time.Second || r.Interval() != time.Second {
				t.Fatalf("span %v interval %v", r.Span(), r.Interval())
			}
			for i := range tc.adds {
				r.Add(t0.Add(time.Duration(i)*time.Second), scores(float64(i), "a"))
			}
			var since time.Time
			if tc.since > 0 {
				since = t0.Add(tc.since)
			}
			got := r.Since(since)
			if len(got) != len(tc.want) {
				t.Fatalf("got %d samples, want %v", len(got), tc.want)
			}
			for i, s := range got {
				if s.Time != t0.Add(time.Duration(tc.want[i])*time.Second) || s.Scores.GetBackends()[0].GetLatencySeconds() != float64(tc.want[i]) {
					t.Fatalf("sample %d: %v, want second %d", i, s, tc.want[i])
				}
			}
		})
	}
}

func TestDefaultsAndBounds(t *testing.T) {
	if r := New(0, 0); r.Interval() != DefaultInterval || r.Span() != DefaultSpan || len(r.buf) != 120 {
		t.Fatalf("defaults: interval %v span %v cap %d", r.Interval(), r.Span(), len(r.buf))
	}
	if r := New(time.Hour, time.Minute); len(r.buf) != 1 {
		t.Fatalf("a span shorter than the interval keeps %d samples, want 1", len(r.buf))
	}
}

func TestSeriesPerBackend(t *testing.T) {
	t0 := time.Unix(1_800_000_000, 0)
	samples := []Sample{
		{t0, scores(1, "a")},
		{t0.Add(time.Second), scores(2, "b", "a")},
		{t0.Add(2 * time.Second), scores(3, "b")},
		{t0.Add(3 * time.Second), nil}, // no scores yet: skipped
	}
	got := Series(samples, nil)
	if len(got) != 2 || got[0].GetProvider() != "a" || got[1].GetProvider() != "b" {
		t.Fatalf("series %v", got)
	}
	if a := got[0].GetSamples(); len(a) != 2 || a[0].GetLatencySeconds() != 1 || a[1].GetLatencySeconds() != 2 || !a[1].GetTime().AsTime().Equal(t0.Add(time.Second)) {
		t.Fatalf("a: %v", a)
	}
	if b := got[1].GetSamples(); len(b) != 2 || b[0].GetLatencySeconds() != 2 || b[1].GetLatencySeconds() != 3 {
		t.Fatalf("b: %v", b)
	}
	onlyB := Series(samples, func(k config.BackendKey) bool { return k.Provider == "b" })
	if len(onlyB) != 1 || onlyB[0].GetProvider() != "b" {
		t.Fatalf("filtered: %v", onlyB)
	}
}
