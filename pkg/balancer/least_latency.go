package balancer

import "math/rand/v2"

func init() { Register("least_latency", func() Strategy { return leastLatency{} }) }

// leastLatency tries the backend with the lowest latency estimate first. The estimate
// (the caller's Latency, time to first token for streams) is scaled by the requests
// already in flight, so one fast backend is not flooded while its queue grows.
//
// Backends without a fresh estimate are explored rather than starved or flooded: one
// with no request in flight goes first, so exactly one request at a time finds out how
// fast it is; while that request runs, the backend ranks after every measured one.
//
// Measured backends within HerdBand of the best cost share the first place at random:
// with fleet-wide scores every edge sees nearly the same numbers, and a strict "fastest
// first" would send the whole fleet onto one backend at once (herding) over
// differences smaller than the estimates' noise; a clearly faster backend still wins.
type leastLatency struct{}

// HerdBand is the relative cost margin within which measured backends count as equally
// fast for least_latency.
const HerdBand = 1.1

func (leastLatency) Order(c []Candidate) {
	if len(c) < 2 {
		return
	}
	// Random start so that equal scores (a cold start) do not all pick index 0.
	rotate(c, rand.IntN(len(c)))
	for i := 1; i < len(c); i++ {
		for j := i; j > 0 && less(&c[j], &c[j-1]); j-- {
			c[j], c[j-1] = c[j-1], c[j]
		}
	}
	if rank(&c[0]) != 1 {
		return
	}
	limit := cost(&c[0]) * HerdBand
	k := 1
	for k < len(c) && rank(&c[k]) == 1 && cost(&c[k]) <= limit {
		k++
	}
	if k > 1 {
		// Move the pick to the front; the rest keep their order, so the failover list
		// stays fastest-first.
		i := rand.IntN(k)
		pick := c[i]
		copy(c[1:i+1], c[:i])
		c[0] = pick
	}
}

func cost(c *Candidate) float64 { return c.Latency * float64(c.InFlight+1) }

// rank groups candidates: 0 unexplored and idle, 1 measured, 2 unexplored but busy.
func rank(c *Candidate) int {
	switch {
	case c.Latency > 0:
		return 1
	case c.InFlight == 0:
		return 0
	}
	return 2
}

func less(a, b *Candidate) bool {
	ra, rb := rank(a), rank(b)
	if ra != rb {
		return ra < rb
	}
	switch ra {
	case 1:
		return cost(a) < cost(b)
	case 2:
		return a.InFlight < b.InFlight
	}
	return false
}
