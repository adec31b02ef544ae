package balancer

func init() { Register("weighted_random", func() Strategy { return weightedRandom{} }) }

// weightedRandom picks the first backend with probability proportional to its weight,
// then the next from those left the same way, so failover order is weighted too.
type weightedRandom struct{}

func (weightedRandom) Order(c []Candidate) { weightedShuffle(c) }
