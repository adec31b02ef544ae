package balancer

import "math"

// Pin moves to the front the candidate that session key maps to, by weighted
// rendezvous hashing: each candidate of the first priority tier scores
// -Weight/ln(u), u a uniform draw from the hash of key and its Seed, and the highest
// score wins. The same key picks the same backend on every edge with no shared state
// — and, when that backend is not a candidate (down, breaker open), the next best,
// moving back once it returns — while keys spread over backends in proportion to
// their weights. The other candidates keep the strategy's order behind it, as the
// failover order. Pin does not allocate.
func Pin(cands []Candidate, key uint64) {
	if len(cands) < 2 {
		return
	}
	tier := cands[0].Priority
	for _, c := range cands[1:] {
		tier = min(tier, c.Priority)
	}
	best, bestScore := -1, math.Inf(-1)
	for i, c := range cands {
		if c.Priority != tier {
			continue
		}
		u := (float64(mix(key^c.Seed)>>11) + 0.5) / (1 << 53) // in (0, 1)
		w := c.Weight
		if w <= 0 {
			w = math.SmallestNonzeroFloat64
		}
		if s := -w / math.Log(u); s > bestScore {
			best, bestScore = i, s
		}
	}
	if best > 0 {
		c := cands[best]
		copy(cands[1:best+1], cands[:best])
		cands[0] = c
	}
}

// HashKey is the 64-bit FNV-1a hash of b: the stable hash Pin's keys and Seeds are
// made with, the same on every edge and every run.
func HashKey(b []byte) uint64 {
	h := uint64(14695981039346656037)
	for _, c := range b {
		h ^= uint64(c)
		h *= 1099511628211
	}
	return h
}

// mix is splitmix64's finalizer: FNV's low bits are poorly mixed for close inputs.
func mix(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	return x ^ x>>31
}
