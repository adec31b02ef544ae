package cpsync

import (
	"testing"
	"time"
)

func TestJitteredSpreadsWithinBounds(t *testing.T) {
	const minB = 500 * time.Millisecond
	for _, backoff := range []time.Duration{minB, 4 * minB, 30 * time.Second} {
		lo, hi := time.Duration(1<<62), time.Duration(0)
		for range 2000 {
			w := jittered(backoff, minB)
			if w < minB/2 || w >= backoff+minB/2 {
				t.Fatalf("backoff %v: wait %v outside [%v, %v)", backoff, w, minB/2, backoff+minB/2)
			}
			lo, hi = min(lo, w), max(hi, w)
		}
		// 2000 uniform draws cover most of the range; lockstep would show as lo == hi.
		if spread := hi - lo; spread < backoff/2 {
			t.Fatalf("backoff %v: waits spread over only %v", backoff, spread)
		}
	}
}
