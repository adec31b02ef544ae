package metrics

import (
	"bufio"
	"strings"
	"testing"
	"time"
)

func TestExposition(t *testing.T) {
	var h Histogram
	h.Observe(3 * time.Millisecond)
	h.Observe(200 * time.Millisecond)
	h.Observe(10 * time.Minute)
	var out strings.Builder
	bw := bufio.NewWriter(&out)
	w := Writer{W: bw}
	w.Header("x_seconds", "histogram", "a test.")
	w.Histogram("x_seconds", &h, "backend", `a"b`)
	w.Sample("y_total", 2, "model", "m")
	w.Sample("z", 1)
	if err := bw.Flush(); err != nil {
		t.Fatal(err)
	}
	got := out.String()
	for _, want := range []string{
		"# HELP x_seconds a test.\n# TYPE x_seconds histogram\n",
		`x_seconds_bucket{backend="a\"b",le="0.005"} 1`,
		`x_seconds_bucket{backend="a\"b",le="0.25"} 2`,
		`x_seconds_bucket{backend="a\"b",le="120"} 2`,
		`x_seconds_bucket{backend="a\"b",le="+Inf"} 3`,
		`x_seconds_count{backend="a\"b"} 3`,
		`x_seconds_sum{backend="a\"b"} 600.203`,
		"y_total{model=\"m\"} 2\n",
		"z 1\n",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("missing %q in\n%s", want, got)
		}
	}
	if h.Count() != 3 {
		t.Errorf("Count = %d", h.Count())
	}
}

func TestObserveDoesNotAllocate(t *testing.T) {
	var h Histogram
	if n := testing.AllocsPerRun(100, func() { h.Observe(time.Second) }); n != 0 {
		t.Fatalf("Observe allocates %.0f times", n)
	}
}
