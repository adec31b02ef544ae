// Package health actively probes providers: every health_check_interval_seconds it
// calls each enabled provider's models endpoint with the provider's real
// authentication and custom headers; a provider that fails is marked unhealthy on all
// its backends (they leave rotation) and re-probed every
// recovery_check_interval_seconds until it passes and its backends rejoin. Backends
// billed per request are never probed (a probe could cost money) and never marked by
// probes: they recover through their breaker's half-open trial instead.
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

// Defaults for zero settings.
const (
	DefaultInterval         = 30 * time.Second
	DefaultRecoveryInterval = 120 * time.Second
	probeTimeout            = 10 * time.Second
)

// TableSource gives the table to probe; nil until the first snapshot.
type TableSource interface{ Table() *routing.Table }

// Checker probes providers. Tables and Bind are required.
type Checker struct {
	Tables TableSource
	// Bind attaches runtime state to a table (proxy.Handler.Bind), so probe results land
	// in the same backend states the proxy routes with.
	Bind func(*routing.Table)
	Log  *slog.Logger
	// Tick is how often due probes are looked for; default 1s.
	Tick time.Duration

	once   sync.Once
	client *fasthttp.Client
	mu     sync.Mutex
	next   map[string]time.Time // provider id → when it is due
	down   map[string]bool
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
	t := c.Tables.Table()
	if t == nil {
		return
	}
	c.Bind(t)
	interval := time.Duration(t.Settings.GetHealthCheckIntervalSeconds()) * time.Second
	if interval <= 0 {
		interval = DefaultInterval
	}
	recovery := time.Duration(t.Settings.GetRecoveryCheckIntervalSeconds()) * time.Second
	if recovery <= 0 {
		recovery = DefaultRecoveryInterval
	}
	probed := probedBackends(t)
	var wg sync.WaitGroup
	c.mu.Lock()
	for id := range c.next {
		if _, ok := probed[id]; !ok {
			delete(c.next, id) // provider gone or no longer probed
			delete(c.down, id)
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
		wait := interval
		if c.down[p.ID] {
			wait = recovery
		}
		c.next[p.ID] = now.Add(wait)
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := c.probe(ctx, p)
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
			for _, b := range bs {
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

// probe calls the provider's models endpoint. The error text carries the status or
// network error only, never the request (which holds the provider's key).
func (c *Checker) probe(ctx context.Context, p *routing.Provider) error {
	if ctx.Err() != nil {
		return errProbeCancelled
	}
	req := fasthttp.AcquireRequest()
	resp := fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	if err := p.Adapter.WriteRequest(req, &p.Account, provider.OpModels, "", nil, &jsonscan.Fields{}); err != nil {
		return err
	}
	if err := c.client.DoTimeout(req, resp, probeTimeout); err != nil {
		return err
	}
	if st := resp.StatusCode(); st < 200 || st > 299 {
		return errors.New("models endpoint answered HTTP " + strconv.Itoa(st))
	}
	return nil
}
