// Package quota is the control plane's side of the fleet's limits: it keeps, per key,
// dimension and window, what the fleet consumed and what each edge holds, and leases
// credit to the edges that have demand, never more than the limit leaves free. Edges
// admit requests against the credit they hold, so the request path never waits on the
// network; the control plane only ever hands out what is left.
//
// The package is pure: no I/O, an injected clock. The server feeds it the edges'
// observation batches, calls Tick every interval, sends each edge what Take returns,
// and persists what TakeDirty and TakeEdges return; a restarted server hands them
// back (Restore, RestoreEdges), and the engine holds credit back until the edges the
// previous process saw have reported what they admitted meanwhile.
package quota

import (
	"math"
	"time"

	berryv1 "github.com/berry-gateway/berry/pkg/api/berry/v1"
)

// Dimensions are the kinds of fleet limit, in the order they are shown.
var Dimensions = []berryv1.QuotaDimension{
	berryv1.QuotaDimension_QUOTA_DIMENSION_REQUESTS_MINUTE,
	berryv1.QuotaDimension_QUOTA_DIMENSION_REQUESTS_HOUR,
	berryv1.QuotaDimension_QUOTA_DIMENSION_REQUESTS_DAY,
	berryv1.QuotaDimension_QUOTA_DIMENSION_TOKENS_MINUTE,
	berryv1.QuotaDimension_QUOTA_DIMENSION_TOKENS_DAY,
	berryv1.QuotaDimension_QUOTA_DIMENSION_COST_DAY,
	berryv1.QuotaDimension_QUOTA_DIMENSION_COST_MONTH,
}

// numDims sizes the arrays indexed by dimension (index 0, unspecified, is unused).
const numDims = 8

// Valid reports whether d is one of Dimensions.
func Valid(d berryv1.QuotaDimension) bool { return d > 0 && d < numDims }

// Window numbers the window of dimension d that t falls in, by the control plane's
// clock: unix seconds / 60 for the minute dimensions, / 3600 for the hour, / 86400
// for the day ones (UTC), and years × 12 + month − 1 (UTC) for the month.
func Window(d berryv1.QuotaDimension, t time.Time) int64 {
	switch d {
	case berryv1.QuotaDimension_QUOTA_DIMENSION_COST_MONTH:
		y, m, _ := t.UTC().Date()
		return int64(y)*12 + int64(m) - 1
	}
	return floorDiv(t.Unix(), seconds(d))
}

// WindowStart is when window w of dimension d starts.
func WindowStart(d berryv1.QuotaDimension, w int64) time.Time {
	if d == berryv1.QuotaDimension_QUOTA_DIMENSION_COST_MONTH {
		return time.Date(int(floorDiv(w, 12)), time.Month(w-floorDiv(w, 12)*12+1), 1, 0, 0, 0, 0, time.UTC)
	}
	return time.Unix(w*seconds(d), 0).UTC()
}

// WindowEnd is when window w of dimension d ends (the next one's start).
func WindowEnd(d berryv1.QuotaDimension, w int64) time.Time { return WindowStart(d, w+1) }

// seconds is the length of d's windows (0 for the month, whose length varies).
func seconds(d berryv1.QuotaDimension) int64 {
	switch d {
	case berryv1.QuotaDimension_QUOTA_DIMENSION_REQUESTS_MINUTE, berryv1.QuotaDimension_QUOTA_DIMENSION_TOKENS_MINUTE:
		return 60
	case berryv1.QuotaDimension_QUOTA_DIMENSION_REQUESTS_HOUR:
		return 3600
	case berryv1.QuotaDimension_QUOTA_DIMENSION_REQUESTS_DAY, berryv1.QuotaDimension_QUOTA_DIMENSION_TOKENS_DAY,
		berryv1.QuotaDimension_QUOTA_DIMENSION_COST_DAY:
		return 86400
	}
	return 1
}

func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && (a < 0) != (b < 0) {
		q--
	}
	return q
}

// Limits are one key's fleet limits, indexed by dimension; 0 is no limit.
type Limits [numDims]int64

// Get returns the limit of dimension d (0: none).
func (l Limits) Get(d berryv1.QuotaDimension) int64 {
	if !Valid(d) {
		return 0
	}
	return l[d]
}

// Any reports whether some dimension is limited.
func (l Limits) Any() bool { return l != Limits{} }

// LimitsOf returns a user's fleet limits: its rate limit's fields and its budget in
// micro-USD.
func LimitsOf(u *berryv1.User) Limits {
	var l Limits
	rl, b := u.GetRateLimit(), u.GetBudget()
	l[berryv1.QuotaDimension_QUOTA_DIMENSION_REQUESTS_MINUTE] = int64(rl.GetRequestsPerMinute())
	l[berryv1.QuotaDimension_QUOTA_DIMENSION_REQUESTS_HOUR] = int64(rl.GetRequestsPerHour())
	l[berryv1.QuotaDimension_QUOTA_DIMENSION_REQUESTS_DAY] = int64(rl.GetRequestsPerDay())
	l[berryv1.QuotaDimension_QUOTA_DIMENSION_TOKENS_MINUTE] = clampInt64(rl.GetTokensPerMinute())
	l[berryv1.QuotaDimension_QUOTA_DIMENSION_TOKENS_DAY] = clampInt64(rl.GetTokensPerDay())
	l[berryv1.QuotaDimension_QUOTA_DIMENSION_COST_DAY] = MicroUSD(b.GetUsdPerDay())
	l[berryv1.QuotaDimension_QUOTA_DIMENSION_COST_MONTH] = MicroUSD(b.GetUsdPerMonth())
	return l
}

// LimitsFromConfig returns the limits of every user of cfg that has one.
func LimitsFromConfig(cfg *berryv1.Config) map[string]Limits {
	out := make(map[string]Limits)
	for _, u := range cfg.GetUsers() {
		if l := LimitsOf(u); l.Any() {
			out[u.GetId()] = l
		}
	}
	return out
}

// MicroUSD converts a budget in USD to micro-USD, rounded to the nearest, as edges
// do; anything not positive and finite is 0 (no limit).
func MicroUSD(usd float64) int64 {
	if !(usd > 0) || math.IsInf(usd, 0) { // also NaN
		return 0
	}
	if v := math.Round(usd * 1e6); v < math.MaxInt64 {
		return int64(v)
	}
	return math.MaxInt64
}

func clampInt64(v uint64) int64 {
	if v > math.MaxInt64 {
		return math.MaxInt64
	}
	return int64(v)
}
