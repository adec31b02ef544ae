package proxy

// Every answer an upstream gave is metered: its usage (as reported, else estimated),
// its cost at the serving backend's prices, the backend's token counters, the usage
// the control plane's ledger receives, and the settlement of what the request
// reserved of its key's fleet limits.

import (
	"strconv"

	"github.com/valyala/fasthttp"

	"github.com/berry-gateway/berry/edge/internal/backends"
	"github.com/berry-gateway/berry/edge/internal/meter"
	"github.com/berry-gateway/berry/edge/internal/quota"
	"github.com/berry-gateway/berry/edge/internal/routing"
	"github.com/berry-gateway/berry/pkg/config"
	"github.com/berry-gateway/berry/pkg/jsonscan"
	"github.com/berry-gateway/berry/pkg/provider"
)

// metered is what settling a request needs, kept by the request and handed to its
// stream.
type metered struct {
	key     string
	model   *routing.Model
	backend *routing.Backend // the backend that answered; nil: none
	ticket  quota.Ticket
	// inputEstimate is the request's estimated input tokens, made while its body is
	// at hand for a stream whose usage may not come (-1: not made).
	inputEstimate int64
}

// admit takes the request's share of its key's fleet limits, or answers 429. It runs
// once the request is known to reach a backend: one refused before that (a bad
// backend, nothing available) uses no quota.
func (h *Handler) admit(r *request) bool {
	u := r.user
	if !u.HasQuota {
		return true
	}
	want := quota.Amounts{Requests: 1}
	if u.Quota.Needs(quota.KindTokens) || u.Quota.Needs(quota.KindCost) {
		in := provider.EstimateTokens(r.ctx.PostBody())
		out := r.fields.MaxTokens
		if out < 0 {
			out = quota.DefaultOutputReservation
		}
		want.Tokens = in + out
		want.CostMicroUSD = config.CostMicroUSD(r.model.MaxPrice, in, 0, out)
	}
	t, rej := h.rt.Quota().Admit(u.ID, &u.Quota, r.now, want)
	if !rej.Refused {
		r.metered.ticket = t
		return true
	}
	retry := strconv.Itoa(ceilSeconds(rej.RetryAfter))
	switch rej.Dimension.Kind() {
	case quota.KindCost:
		r.model.Stats.QuotaRejected[backends.QuotaBudget].Add(1)
		r.in.writeError(r.ctx, fasthttp.StatusTooManyRequests, typeRateLimit, "insufficient_quota",
			"this API key has spent its "+budgetName(rej.Dimension)+" budget; it renews in "+retry+"s")
	case quota.KindTokens:
		r.model.Stats.QuotaRejected[backends.QuotaTokens].Add(1)
		r.in.writeError(r.ctx, fasthttp.StatusTooManyRequests, typeRateLimit, "rate_limit_exceeded",
			"token rate limit exceeded for this API key; retry after "+retry+"s")
	default:
		r.model.Stats.QuotaRejected[backends.QuotaRequests].Add(1)
		r.in.writeError(r.ctx, fasthttp.StatusTooManyRequests, typeRateLimit, "rate_limit_exceeded",
			"rate limit exceeded for this API key; retry after "+retry+"s")
	}
	r.ctx.Response.Header.Set("Retry-After", retry)
	return false
}

func budgetName(d quota.Dimension) string {
	if d == quota.CostMonth {
		return "monthly"
	}
	return "daily"
}

// settle meters a finished request: u is the usage its answer reported
// (jsonscan.NoUsage when none); outputEstimate the output tokens to assume then.
func (h *Handler) settle(m *metered, u jsonscan.Usage, outputEstimate int64) {
	b := m.backend
	if b == nil {
		// No backend answered: the request counts, its tokens do not.
		h.rt.Quota().Settle(&m.ticket, quota.Amounts{Requests: 1})
		return
	}
	estimated := false
	if u.Input < 0 || u.Output < 0 {
		estimated = true
		if u.Input < 0 {
			u.Input, u.Cached = max(m.inputEstimate, 0), 0
		}
		if u.Output < 0 {
			u.Output, u.Reasoning = max(outputEstimate, 0), 0
		}
	}
	cost := config.CostMicroUSD(b.Price, u.Input, u.Cached, u.Output)
	s := b.Stats
	s.Tokens[backends.TokensInput].Add(uint64(u.Input))
	s.Tokens[backends.TokensOutput].Add(uint64(u.Output))
	s.Tokens[backends.TokensCached].Add(uint64(u.Cached))
	s.Tokens[backends.TokensReasoning].Add(uint64(u.Reasoning))
	s.CostMicroUSD.Add(uint64(cost))
	h.rt.Meter().Add(m.key, m.model.ID, b.Key(), meter.Usage{Input: u.Input, Output: u.Output, Cached: u.Cached,
		Reasoning: u.Reasoning, CostMicroUSD: cost, Estimated: estimated})
	h.rt.Quota().Settle(&m.ticket, quota.Amounts{Requests: 1, Tokens: u.Input + u.Output, CostMicroUSD: cost})
}
