package balancer

import "sync/atomic"

func init() { Register("round_robin", func() Strategy { return &roundRobin{} }) }

// roundRobin rotates the candidates by a per-model counter. The counter is advanced
// atomically, so concurrent requests each get a distinct starting point and the
// available backends share traffic evenly; when the available set changes (a breaker
// opens) the rotation simply continues over the new set.
type roundRobin struct{ next atomic.Uint64 }

func (r *roundRobin) Order(c []Candidate) {
	n := len(c)
	if n < 2 {
		return
	}
	k := int((r.next.Add(1) - 1) % uint64(n))
	rotate(c, k)
}

// rotate moves c[k] to the front keeping cyclic order, in place without allocating
// (three reversals).
func rotate(c []Candidate, k int) {
	if k == 0 {
		return
	}
	reverse(c[:k])
	reverse(c[k:])
	reverse(c)
}

func reverse(c []Candidate) {
	for i, j := 0, len(c)-1; i < j; i, j = i+1, j-1 {
		c[i], c[j] = c[j], c[i]
	}
}
