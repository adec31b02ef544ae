package balancer

import "math/rand/v2"

func init() { Register("random", func() Strategy { return uniformRandom{} }) }

// uniformRandom shuffles the candidates, ignoring weights: every available backend is
// equally likely to be first, and the failover order is random too.
type uniformRandom struct{}

func (uniformRandom) Order(c []Candidate) {
	for i := len(c) - 1; i > 0; i-- {
		j := rand.IntN(i + 1)
		c[i], c[j] = c[j], c[i]
	}
}
