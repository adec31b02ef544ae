// Package health actively probes providers: every health_check_interval_seconds it
// calls each enabled provider's models endpoint with the provider's real
// authentication and custom headers; a provider that fails is marked unhealthy on all
// its backends (they leave rotation) and re-probed every
// recovery_check_interval_seconds until it passes and its backends rejoin. Backends
// billed per request are never probed (a probe could cost money) and never marked by
// probes: they recover through their breaker's half-open trial instead.
//
// The probe's answer is also model discovery: when it is a complete model list, a
// backend whose upstream model an earlier probe listed and this one does not is marked
// unavailable with that reason (shown in /health), and rejoins when it is listed again.
package health

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/berry-gateway/berry/edge/internal/routing"
	"github.com/berry-gateway/berry/pkg/jsonscan"
	"github.com/berry-gateway/berry/pkg/provider"
	"github.com/valyala/fasthttp"
)

const probeTimeout = 10 * time.Second

// Runtime is what the checker probes for (serving.Runtime): the table being served,
// whose backend states receive the results, and whether this edge runs a provider's
// probes now (coordinated probing: the control plane gives each provider's probes to
// one edge, the others take its results).
type Runtime interface {
	Table() *routing.Table
	ProbeAssigned(provider string, now time.Time) bool
}

// Checker probes providers. Runtime is required.
type Checker struct {
	Runtime Runtime
	Log     *slog.Logger
	// Tick is how often due probes are looked for; default 1s.
	Tick time.Duration

	once   sync.Once
	client *fasthttp.Client
	mu     sync.Mutex
	next   map[string]time.Time // provider id → when it is due
	down   map[string]bool
	// listed records, per provider, the configured upstream models its models
	// endpoint has listed (model discovery).
	listed map[string]map[string]bool
}

// discover records which of the backends' upstream models a complete listing served
// holds, and returns those that have vanished: listed by an earlier probe, absent
// now. A model never listed is not concluded missing: many OpenAI-compatible
// services accept names they do not list (aliases, dated versions), so only a
// disappearance is evidence. served nil (no complete list) changes nothing.
func (c *Checker) discover(providerID string, bs []*routing.Backend, served provider.ModelSet) map[string]bool {
	if served == nil {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	seen := c.listed[providerID]
	if seen == nil {
		seen = map[string]bool{}
		c.listed[providerID] = seen
	}
	var gone map[string]bool
	for _, b := range bs {
		m := b.UpstreamModel
		switch {
		case served.Has(m):
			seen[m] = true
		case seen[m]:
			if gone == nil {
				gone = map[string]bool{}
			}
			gone[m] = true
		}
	}
	return gone
}

// Listed reports whether the provider's models endpoint listed upstream model m at
// some probe since this checker started (for /health and tests).
func (c *Checker) Listed(providerID, m string) bool {
	c.init()
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.listed[providerID][m]
}

func (c *Checker) init() {
	c.once.Do(func() {
		if c.Log == nil {
			c.Log = slog.Default()
		}
		if c.Tick <= 0 {
			c.Tick = time.Second
		}
		d := &net.Dialer{Timeout: probeTimeout}
		c.client = &fasthttp.Client{
			Name: "berry-edge-probe", ReadTimeout: probeTimeout, WriteTimeout: probeTimeout,
			Dial: func(addr string) (net.Conn, error) { return d.Dial("tcp", addr) },
		}
		c.next = map[string]time.Time{}
		c.down = map[string]bool{}
		c.listed = map[string]map[string]bool{}
	})
}

// Run probes until ctx ends.
func (c *Checker) Run(ctx context.Context) {
	c.init()
	tick := time.NewTicker(c.Tick)
	defer tick.Stop()
	for {
		c.RunOnce(ctx, time.Now())
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// RunOnce probes every provider that is due at now, concurrently, and waits for them.
func (c *Checker) RunOnce(ctx context.Context, now time.Time) {
	c.init()
	t := c.Runtime.Table()
	if t == nil {
		return
	}
	interval, recovery := t.Settings.HealthInterval, t.Settings.RecoveryInterval
	probed := probedBackends(t)
	var wg sync.WaitGroup
	c.mu.Lock()
	for id := range c.next {
		if _, ok := probed[id]; !ok {
			delete(c.next, id) // provider gone or no longer probed
			delete(c.down, id)
			delete(c.listed, id)
		}
	}
	for _, p := range t.Providers() {
		bs, ok := probed[p.ID]
		if !ok {
			continue
		}
		if due, seen := c.next[p.ID]; seen && now.Before(due) {
			continue
		}
		if !c.Runtime.ProbeAssigned(p.ID, now) {
			continue
		}
		wait := interval
		if c.down[p.ID] {
			wait = recovery
		}
		c.next[p.ID] = now.Add(wait)
		wg.Add(1)
		go func() {
			defer wg.Done()
			served, err := c.probe(ctx, p)
			c.mu.Lock()
			wasDown := c.down[p.ID]
			c.down[p.ID] = err != nil
			if err != nil && !wasDown {
				// Re-probe on the recovery schedule from now on.
				c.next[p.ID] = now.Add(recovery)
			}
			c.mu.Unlock()
			msg := ""
			if err != nil {
				msg = err.Error()
				if !wasDown {
					c.Log.Warn("provider failed its health probe; its backends leave rotation", "provider", p.ID, "err", msg)
				}
			} else if wasDown {
				c.Log.Info("provider passed its health probe; its backends rejoin", "provider", p.ID)
			}
			gone := c.discover(p.ID, bs, served)
			for _, b := range bs {
				if err == nil && gone[b.UpstreamModel] {
					b.State.SetProbe(false, "model "+strconv.Quote(b.UpstreamModel)+" is no longer listed by provider "+strconv.Quote(p.ID))
					continue
				}
				b.State.SetProbe(err == nil, msg)
			}
		}()
	}
	c.mu.Unlock()
	wg.Wait()
}

// probedBackends lists, per provider worth probing, the backends a probe speaks for:
// enabled, not billed per request, on an enabled provider whose adapter can list
// models.
func probedBackends(t *routing.Table) map[string][]*routing.Backend {
	out := map[string][]*routing.Backend{}
	for _, name := range t.ModelNames {
		for _, b := range t.ModelByName(name).Backends {
			p := b.Provider
			if !b.Enabled || b.PerRequest || !p.Enabled || !p.Adapter.Supports(provider.OpModels) {
				continue
			}
			out[p.ID] = append(out[p.ID], b)
		}
	}
	return out
}

var errProbeCancelled = errors.New("probe cancelled")

// probe calls the provider's models endpoint. served is the set of models the answer
// lists, nil when it is not a complete list (then nothing is concluded about models).
// The error text carries the status or network error only, never the request (which
// holds the provider's key).
func (c *Checker) probe(ctx context.Context, p *routing.Provider) (served provider.ModelSet, _ error) {
	if ctx.Err() != nil {
		return nil, errProbeCancelled
	}
	req := fasthttp.AcquireRequest()
	resp := fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	if err := p.Adapter.WriteRequest(req, &p.Account, provider.OpModels, "", nil, &jsonscan.Fields{}); err != nil {
		return nil, err
	}
	if err := c.client.DoTimeout(req, resp, probeTimeout); err != nil {
		return nil, err
	}
	if st := resp.StatusCode(); st < 200 || st > 299 {
		return nil, errors.New("models endpoint answered HTTP " + strconv.Itoa(st))
	}
	ids, complete, err := provider.ParseModelIDs(p.Account.Kind, resp.Body())
	if err != nil || !complete {
		// A healthy answer without a usable list (or one page of a longer list) says
		// the provider is up, not which models it lacks.
		return nil, nil
	}
	return ids, nil
}
