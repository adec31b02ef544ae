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
type leastLatency struct{}

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
}

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
		return a.Latency*float64(a.InFlight+1) < b.Latency*float64(b.InFlight+1)
	case 2:
		return a.InFlight < b.InFlight
	}
	return false
}
