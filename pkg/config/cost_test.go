package config

import (
	"math"
	"testing"

	berryv1 "github.com/berry-gateway/berry/pkg/api/berry/v1"
)

func TestCostMicroUSD(t *testing.T) {
	price := func(in, out, cached float64) *berryv1.Price {
		return &berryv1.Price{InputPerMtok: in, OutputPerMtok: out, CachedInputPerMtok: cached}
	}
	gpt4 := price(30, 60, 15)
	tests := []struct {
		name                  string
		p                     *berryv1.Price
		input, cached, output int64
		want                  int64
	}{
		{"nil price", nil, 1000, 0, 1000, 0},
		{"no tokens", gpt4, 0, 0, 0, 0},
		{"a million input tokens cost the price", gpt4, 1_000_000, 0, 0, 30_000_000},
		{"a million output tokens", gpt4, 0, 0, 1_000_000, 60_000_000},
		// 1000 × 30 + 500 × 60 micro-USD: $0.06.
		{"input and output", gpt4, 1000, 0, 500, 60_000},
		// 600 uncached × 30 + 400 cached × 15 + 10 × 60.
		{"cached at the cached price", gpt4, 1000, 400, 10, 18_000 + 6_000 + 600},
		{"cached at the input price when unset", price(30, 60, 0), 1000, 400, 10, 30_000 + 600},
		{"all cached", gpt4, 1000, 1000, 0, 15_000},
		{"zero price", price(0, 0, 0), 1 << 40, 0, 1 << 40, 0},
		{"output price only", price(0, 2, 0), 100, 0, 3, 6},
		// Round half up, once, on the sum.
		{"half rounds up", price(2.5, 0, 0), 3, 0, 0, 8},                      // 7.5
		{"below half rounds down", price(0.15, 0, 0), 3, 0, 0, 0},             // 0.45
		{"one token at a cheap price", price(0.15, 0.6, 0), 1, 0, 0, 0},       // 0.15
		{"halves add up before rounding", price(0.5, 0.5, 0), 1, 0, 1, 1},     // 0.5 + 0.5, not 1 + 1
		{"two halves and a half", price(0.5, 0.25, 0), 1, 0, 2, 1},            // 0.5 + 0.5 = 1.0
		{"sub-micro sum rounds up at half", price(0.25, 0.25, 0), 1, 0, 1, 1}, // 0.5
		// Prices are read as the decimals they were written as: in binary 1.005 is
		// 1.00499999999999989…, and 100 × it in float64 is 100.49999999999999.
		{"decimal price, not its binary neighbour", price(1.005, 0, 0), 100, 0, 0, 101},
		{"decimal cached price", price(10, 0, 0.075), 10, 10, 0, 1},                   // 0.75
		{"decimal price summed", price(0.1, 0.2, 0), 5, 0, 5, 2},                      // 0.5 + 1.0 = 1.5
		{"nine decimals", price(0.000000001, 0, 0), 500_000_000, 0, 0, 1},             // 0.5
		{"realistic", price(3, 15, 0.3), 12_345, 10_000, 678, 7_035 + 3_000 + 10_170}, // 2345×3, 10000×0.3, 678×15
		// Out of range input.
		{"negative counts count as 0", gpt4, -5, -1, -7, 0},
		{"cached beyond input counts as input", gpt4, 10, 20, 0, 150},
		{"invalid prices count as 0", price(math.NaN(), math.Inf(1), -3), 10, 5, 10, 0},
		{"negative cached price counts as 0, not as unset", price(30, 0, -1), 10, 10, 0, 0},
		{"saturates", price(1e6, 1e6, 0), math.MaxInt64, 0, math.MaxInt64, math.MaxInt64},
		{"huge price saturates", price(1e300, 0, 0), 1, 0, 0, math.MaxInt64},
		{"huge price, few tokens", price(1e10, 0, 0), 2, 0, 0, 2e10},
		{"largest exact sum", price(1, 0, 0), math.MaxInt64, 0, 0, math.MaxInt64},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := CostMicroUSD(tt.p, tt.input, tt.cached, tt.output); got != tt.want {
				t.Errorf("CostMicroUSD(%v, %d, %d, %d) = %d, want %d", tt.p, tt.input, tt.cached, tt.output, got, tt.want)
			}
		})
	}
}

// CostMicroUSD agrees with exact rational arithmetic on decimal prices.
func TestCostMicroUSDMatchesDecimalArithmetic(t *testing.T) {
	// Prices in thousandths of a USD per million tokens, as price lists write them.
	for _, milli := range []int64{0, 1, 5, 75, 150, 1005, 2500, 30000, 75000} {
		p := &berryv1.Price{InputPerMtok: float64(milli) / 1000}
		for _, n := range []int64{0, 1, 2, 3, 7, 10, 100, 999, 1000, 123457, 1 << 33} {
			// n × milli/1000, rounded half up, in integers.
			want := (n*milli + 500) / 1000
			if got := CostMicroUSD(p, n, 0, 0); got != want {
				t.Errorf("%d tokens at %g: %d, want %d", n, p.InputPerMtok, got, want)
			}
		}
	}
}
