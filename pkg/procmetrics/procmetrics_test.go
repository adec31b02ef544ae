package procmetrics

import (
	"runtime"
	"testing"
)

func TestRegistry(t *testing.T) {
	mfs, err := NewRegistry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for _, mf := range mfs {
		names[mf.GetName()] = true
		if mf.GetName() != "berry_build_info" {
			continue
		}
		labels := map[string]string{}
		for _, l := range mf.GetMetric()[0].GetLabel() {
			labels[l.GetName()] = l.GetValue()
		}
		if labels["go_version"] != runtime.Version() || labels["version"] == "" {
			t.Errorf("berry_build_info labels %v", labels)
		}
	}
	for _, n := range []string{"berry_build_info", "go_goroutines", "go_memstats_heap_inuse_bytes", "process_resident_memory_bytes"} {
		if !names[n] {
			t.Errorf("%s missing", n)
		}
	}
}
