package config

import (
	"math"
	"math/bits"

	berryv1 "github.com/berry-gateway/berry/pkg/api/berry/v1"
)

// CostMicroUSD is the cost in micro-USD of tokens at a price: input (cached ones included) and output tokens; cached input tokens are charged cached_input_per_mtok when it is set, else input_per_mtok. A nil price costs 0.
//
// A price in USD per million tokens is the cost of one token in micro-USD, so the
// cost is Σ tokens × price, rounded once, half up, to an integer. The sum is exact
// for prices with up to nine decimals (anything a price list uses): each price is
// read as a decimal, not as the binary fraction nearest to it, so 100 tokens at
// 1.005 cost 101, not 100. Negative counts count as 0 and cached as at most input;
// a negative or non-finite price (which Validate refuses) as 0; a cost beyond
// math.MaxInt64 as math.MaxInt64.
func CostMicroUSD(p *berryv1.Price, input, cached, output int64) int64 {
	if p == nil {
		return 0
	}
	input, output = max(input, 0), max(output, 0)
	cached = min(max(cached, 0), input)
	cachedPrice := p.GetCachedInputPerMtok()
	if cachedPrice == 0 {
		cachedPrice = p.GetInputPerMtok()
	}
	terms := [3]struct {
		tokens int64
		price  float64
	}{{input - cached, p.GetInputPerMtok()}, {cached, cachedPrice}, {output, p.GetOutputPerMtok()}}

	// Prices in units of 1e-9 micro-USD per token, and the sum in 128 bits: each
	// product is below 2^126, so three of them cannot overflow.
	var hi, lo uint64
	for _, t := range terms {
		n, ok := nanoMicro(t.price)
		if !ok {
			return costFloat(terms[:])
		}
		h, l := bits.Mul64(uint64(t.tokens), n)
		var carry uint64
		lo, carry = bits.Add64(lo, l, 0)
		hi += h + carry
	}
	const unit = 1e9
	lo, carry := bits.Add64(lo, unit/2, 0) // half up
	hi += carry
	if hi >= unit {
		return math.MaxInt64
	}
	q, _ := bits.Div64(hi, lo, unit)
	if q > math.MaxInt64 {
		return math.MaxInt64
	}
	return int64(q)
}

// nanoMicro is a price per million tokens in units of 1e-9 micro-USD per token,
// rounded to the nearest: exact for a decimal price of up to nine decimals, as the
// product's error is far below one unit. ok is false for a price too large to hold
// below 2^63 units (about 9.2e9 USD per million tokens).
func nanoMicro(price float64) (n uint64, ok bool) {
	if !(price > 0) || math.IsInf(price, 1) {
		return 0, true // negative, zero or NaN; +Inf is no price either
	}
	x := math.Round(price * 1e9)
	if x >= 1<<63 {
		return 0, false
	}
	return uint64(x), true
}

// costFloat prices what nanoMicro cannot represent; any token at such a price costs
// more than exactness matters for.
func costFloat(terms []struct {
	tokens int64
	price  float64
}) int64 {
	var sum float64
	for _, t := range terms {
		if t.price > 0 && !math.IsInf(t.price, 1) {
			sum += float64(t.tokens) * t.price
		}
	}
	if sum >= math.MaxInt64 {
		return math.MaxInt64
	}
	return int64(math.Floor(sum + 0.5))
}
