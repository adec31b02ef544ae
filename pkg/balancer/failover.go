package balancer

import "math/rand/v2"

func init() { Register("failover", func() Strategy { return failover{} }) }

// failover orders by priority, lowest first, so a lower tier is only reached when
// every backend of the tiers above is unavailable (filtered out before Order) or has
// failed this request. Within a tier it spreads by weight, so two primaries share load.
type failover struct{}

func (failover) Order(c []Candidate) {
	// Insertion sort: candidate lists are short and this must not allocate.
	for i := 1; i < len(c); i++ {
		for j := i; j > 0 && c[j].Priority < c[j-1].Priority; j-- {
			c[j], c[j-1] = c[j-1], c[j]
		}
	}
	for lo := 0; lo < len(c); {
		hi := lo + 1
		for hi < len(c) && c[hi].Priority == c[lo].Priority {
			hi++
		}
		if hi-lo > 1 {
			weightedShuffle(c[lo:hi])
		}
		lo = hi
	}
}

// weightedShuffle is weighted_random's ordering, shared by strategies that spread load
// within a group.
func weightedShuffle(c []Candidate) {
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
