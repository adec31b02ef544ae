package balancer

import "math/rand/v2"

func init() { Register("weighted_random", func() Strategy { return weightedRandom{} }) }

// weightedRandom picks the first backend with probability proportional to its weight,
// then the next from those left the same way, so failover order is weighted too.
type weightedRandom struct{}

func (weightedRandom) Order(c []Candidate) {
	total := 0.0
	for i := range c {
		total += c[i].Weight
	}
	for i := 0; i < len(c)-1; i++ {
		r := rand.Float64() * total
		j := i
		for ; j < len(c)-1; j++ {
			r -= c[j].Weight
			if r < 0 {
				break
			}
		}
		total -= c[j].Weight
		c[i], c[j] = c[j], c[i]
	}
}
