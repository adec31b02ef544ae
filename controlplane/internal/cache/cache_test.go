package cache

import (
	"sync"
	"testing"

	berryv1 "github.com/berry-gateway/berry/pkg/api/berry/v1"
)

// sequenced is either cache seen through its sequence number (snapshot version or
// scores epoch), so both run the same tests.
type sequenced struct {
	name  string
	set   func(n uint64) bool
	watch func() (n uint64, none bool, changed <-chan struct{})
}

func caches() []func() sequenced {
	return []func() sequenced{
		func() sequenced {
			var c Snapshots
			return sequenced{"Snapshots",
				func(n uint64) bool { return c.Set(&berryv1.Snapshot{Version: n}) },
				func() (uint64, bool, <-chan struct{}) {
					s, ch := c.Watch()
					return s.GetVersion(), s == nil, ch
				}}
		},
		func() sequenced {
			var c Scores
			return sequenced{"Scores",
				func(n uint64) bool { return c.Set(&berryv1.FleetScores{Epoch: n}) },
				func() (uint64, bool, <-chan struct{}) {
					s, ch := c.Watch()
					return s.GetEpoch(), s == nil, ch
				}}
		},
	}
}

func TestSetOnlyNewer(t *testing.T) {
	for _, mk := range caches() {
		c := mk()
		t.Run(c.name, func(t *testing.T) {
			if n, none, _ := c.watch(); !none {
				t.Fatalf("zero cache holds %d", n)
			}
			for _, tc := range []struct {
				n    uint64
				want bool
			}{{2, true}, {1, false}, {2, false}, {5, true}} {
				if got := c.set(tc.n); got != tc.want {
					t.Errorf("Set(%d) = %v, want %v", tc.n, got, tc.want)
				}
			}
			if n, _, _ := c.watch(); n != 5 {
				t.Fatalf("current = %d, want 5", n)
			}
		})
	}
}

func TestWatchWakesEveryWatcher(t *testing.T) {
	for _, mk := range caches() {
		c := mk()
		t.Run(c.name, func(t *testing.T) {
			c.set(1)
			var wg sync.WaitGroup
			got := make([]uint64, 10)
			for i := range got {
				_, _, ch := c.watch()
				wg.Add(1)
				go func() {
					defer wg.Done()
					<-ch
					got[i], _, _ = c.watch()
				}()
			}
			c.set(2)
			wg.Wait()
			for i, n := range got {
				if n != 2 {
					t.Errorf("watcher %d saw %d, want 2", i, n)
				}
			}
		})
	}
}

// TestScoresOfAnotherInstance: a member that stops leading publishes the leader's
// scores, whose epochs are not comparable with its own.
func TestScoresOfAnotherInstance(t *testing.T) {
	var c Scores
	for _, tc := range []struct {
		instance string
		epoch    uint64
		want     bool
	}{
		{"a", 500, true},
		{"a", 499, false},
		{"b", 3, true}, // another instance, whatever its epoch
		{"b", 3, false},
		{"b", 4, true},
		{"a", 501, true}, // back to the first
	} {
		if got := c.Set(&berryv1.FleetScores{Instance: tc.instance, Epoch: tc.epoch}); got != tc.want {
			t.Errorf("Set(%s, %d) = %v, want %v", tc.instance, tc.epoch, got, tc.want)
		}
	}
	if s, _ := c.Watch(); s.GetInstance() != "a" || s.GetEpoch() != 501 {
		t.Fatalf("current = %s/%d, want a/501", s.GetInstance(), s.GetEpoch())
	}
}
