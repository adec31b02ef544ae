package snapcache

import (
	"sync"
	"testing"

	berryv1 "github.com/berry-gateway/berry/pkg/api/berry/v1"
)

func TestSetOnlyNewer(t *testing.T) {
	var c Cache
	if s, _ := c.Watch(); s != nil {
		t.Fatalf("zero cache has snapshot %v", s)
	}
	for _, tc := range []struct {
		version uint64
		want    bool
	}{{2, true}, {1, false}, {2, false}, {5, true}} {
		if got := c.Set(&berryv1.Snapshot{Version: tc.version}); got != tc.want {
			t.Errorf("Set(%d) = %v, want %v", tc.version, got, tc.want)
		}
	}
	if s, _ := c.Watch(); s.GetVersion() != 5 {
		t.Fatalf("current = %d, want 5", s.GetVersion())
	}
}

func TestWatchWakesEveryWatcher(t *testing.T) {
	var c Cache
	c.Set(&berryv1.Snapshot{Version: 1})
	var wg sync.WaitGroup
	got := make([]uint64, 10)
	for i := range got {
		_, ch := c.Watch()
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-ch
			s, _ := c.Watch()
			got[i] = s.GetVersion()
		}()
	}
	c.Set(&berryv1.Snapshot{Version: 2})
	wg.Wait()
	for i, v := range got {
		if v != 2 {
			t.Errorf("watcher %d saw version %d, want 2", i, v)
		}
	}
}
