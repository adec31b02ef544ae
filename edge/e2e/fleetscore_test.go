package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	berryv1 "github.com/berry-gateway/berry/pkg/api/berry/v1"
	"github.com/berry-gateway/berry/pkg/upstreamsim"
)

// fleetReport is the edges' report interval and the control plane's score interval in
// the fleet tests: short, so a few intervals pass within a test.
const fleetReport = 200 * time.Millisecond

// fleetTOML: model "mixed" ranks both simulators by least latency, model "pin" uses
// only the slow one (the backend sim-slow/up-s is shared by both models).
func fleetTOML(fastURL, slowURL string) string {
	return fmt.Sprintf(`
[settings]
request_timeout_seconds = 10
max_retries = 0
circuit_breaker_failure_threshold = 3
circuit_breaker_timeout_seconds = 3

[providers.sim-fast]
name = "fast"
base_url = %q
api_key = "key-f"
models = ["up-f"]

[providers.sim-slow]
name = "slow"
base_url = %q
api_key = "key-s"
models = ["up-s"]

[models.mixed]
name = "mixed"
strategy = "least_latency"

[[models.mixed.backends]]
provider = "sim-fast"
model = "up-f"

[[models.mixed.backends]]
provider = "sim-slow"
model = "up-s"

[models.pin]
name = "pin"

[[models.pin.backends]]
provider = "sim-slow"
model = "up-s"

[users.alice]
name = "Alice"
token = %q
`, fastURL, slowURL, userToken)
}

func startFleetEdge(t *testing.T, cpAddr, id string) *edge {
	t.Helper()
	addr := freeAddr(t)
	p := startProc(t, "edge "+id, "berry-edge", "--listen", addr, "--control-plane", cpAddr, "--edge-id", id,
		"--cache-dir", t.TempDir(), "--report-interval", fleetReport.String())
	e := &edge{proc: p, url: "http://" + addr}
	eventually(t, "edge "+id+" listens", func() error {
		resp, err := http.Get(e.url + "/healthz")
		if err != nil {
			return err
		}
		resp.Body.Close()
		return nil
	})
	return e
}

// metric reads one sample of the edge's /metrics (loopback needs no token); ok is
// false when the series is absent.
func (e *edge) metric(series string) (v float64, ok bool, err error) {
	resp, err := http.Get(e.url + "/metrics")
	if err != nil {
		return 0, false, err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if rest, found := strings.CutPrefix(line, series+" "); found {
			v, err := strconv.ParseFloat(strings.TrimSpace(rest), 64)
			return v, err == nil, err
		}
	}
	return 0, false, sc.Err()
}

func mixedBody(model string) string {
	return `{"model":"` + model + `","messages":[{"role":"user","content":"hi"}]}`
}

type fleetEnv struct {
	fast, slow *upstreamsim.Server
	cp         *controlPlane
	cpDir      string
	edges      []*edge
}

func startFleetEnv(t *testing.T, edges int) *fleetEnv {
	t.Helper()
	return startFleetEnvConfig(t, edges, "")
}

// startFleetEnvConfig starts the simulators, a control plane and edges; settings are
// extra [settings] lines.
func startFleetEnvConfig(t *testing.T, edges int, settings string) *fleetEnv {
	t.Helper()
	env := &fleetEnv{
		fast:  startSim(t, upstreamsim.Options{Name: "fast", APIKey: "key-f", Latency: 40 * time.Millisecond}),
		slow:  startSim(t, upstreamsim.Options{Name: "slow", APIKey: "key-s"}),
		cpDir: t.TempDir(),
	}
	env.cp = startControlPlane(t, env.cpDir, "--score-interval", fleetReport.String())
	doc := fleetTOML(env.fast.URL(), env.slow.URL())
	doc = strings.Replace(doc, "[settings]\n", "[settings]\n"+settings, 1)
	v := importConfig(t, env.cp, doc)
	for i := range edges {
		e := startFleetEdge(t, env.cp.addr, fmt.Sprintf("fleet-%c", 'a'+i))
		e.waitVersion(t, v)
		env.edges = append(env.edges, e)
	}
	return env
}

func (env *fleetEnv) score(t *testing.T, provider string) (*berryv1.BackendScore, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	r, err := env.cp.admin.GetScores(ctx, &berryv1.GetScoresRequest{})
	if err != nil {
		return nil, err
	}
	for _, b := range r.GetBackends() {
		if b.GetProvider() == provider {
			return b, nil
		}
	}
	return nil, fmt.Errorf("no score for %s yet (epoch %d)", provider, r.GetEpoch())
}

// One upstream turns slow and only edge a sends traffic to it; the other edges, whose
// own samples still say it is the faster one, move their least_latency traffic away
// without sending it a single request, once a's reports reach them.
func TestFleetLatencyMovesOtherEdgesAway(t *testing.T) {
	env := startFleetEnv(t, 3)
	a, others := env.edges[0], env.edges[1:]

	// Warm up: every edge measures both; the "slow" simulator is the faster one now
	// (0 vs 40ms), so local estimates everywhere prefer it.
	for _, e := range env.edges {
		for range 8 {
			if r := chat(t, e.url, userToken, mixedBody("mixed")); r.status != http.StatusOK {
				t.Fatalf("%s warm-up: %d %s", e.name, r.status, r.body)
			}
		}
	}
	if n := env.slow.Stats().ChatRequests; n < 6 {
		t.Fatalf("warm-up sent %d requests to the then-faster simulator; least_latency should prefer it", n)
	}

	env.slow.SetOptions(upstreamsim.Options{Name: "slow", APIKey: "key-s", Latency: 400 * time.Millisecond})
	// a sends its slow requests in the background; the clock starts at its first
	// slow answer, which its next report carries.
	first, aDone := make(chan time.Time, 1), make(chan error, 1)
	go func() {
		for i := range 4 {
			r := chat(t, a.url, userToken, mixedBody("pin"))
			if r.status != http.StatusOK {
				aDone <- fmt.Errorf("edge a on pin: %d %s", r.status, r.body)
				return
			}
			if i == 0 {
				first <- time.Now()
			}
		}
		aDone <- nil
	}()
	var firstSlow time.Time
	select {
	case firstSlow = <-first:
	case err := <-aDone:
		t.Fatal(err)
	}
	// The others learn the new latency from the fleet score alone.
	for _, e := range others {
		eventually(t, e.name+" sees the fleet latency of sim-slow", func() error {
			v, ok, err := e.metric(`berry_backend_latency_seconds{backend="sim-slow/up-s",source="fleet"}`)
			if err != nil || !ok || v < 0.3 {
				return fmt.Errorf("fleet latency %v (present %v, err %v)", v, ok, err)
			}
			return nil
		})
	}
	learned := time.Since(firstSlow)
	if err := <-aDone; err != nil {
		t.Fatal(err)
	}
	t.Logf("edges b and c had the slow backend's fleet score at most %v after edge a's first slow answer (%.1f report intervals of %v, polling included)",
		learned.Round(time.Millisecond), float64(learned)/float64(fleetReport), fleetReport)

	before := env.slow.Stats().ChatRequests
	for _, e := range others {
		for range 10 {
			if r := chat(t, e.url, userToken, mixedBody("mixed")); r.status != http.StatusOK {
				t.Fatalf("%s: %d %s", e.name, r.status, r.body)
			}
		}
	}
	if n := env.slow.Stats().ChatRequests - before; n != 0 {
		t.Fatalf("edges b and c sent %d of 20 least_latency requests to the backend the fleet knows is slow", n)
	}
	t.Logf("edges b and c sent 0 of 20 least_latency requests to the slow backend (their own samples still ranked it first)")

	// berryctl shows the scores: a model's backends as a table, one as JSON.
	code, out, errOut := berryctl(t, nil, "--server", env.cp.addr, "scores", "mixed")
	if code != 0 || !strings.Contains(out, "sim-slow/up-s") || !strings.Contains(out, "sim-fast/up-f") || !strings.Contains(out, "PROBE OWNER") {
		t.Fatalf("berryctl scores mixed: exit %d\n%s%s", code, out, errOut)
	}
	code, out, errOut = berryctl(t, nil, "--server", env.cp.addr, "-o", "json", "scores", "pin")
	var pin struct {
		Backends []struct {
			Provider, UpstreamModel string
			LatencySeconds          float64
		}
	}
	// protojson varies its spacing on purpose: decode rather than match text.
	if err := json.Unmarshal([]byte(out), &pin); code != 0 || err != nil || len(pin.Backends) != 1 ||
		pin.Backends[0].UpstreamModel != "up-s" || pin.Backends[0].LatencySeconds < 0.3 {
		t.Fatalf("berryctl -o json scores pin: exit %d, decode error %v\n%s%s", code, err, out, errOut)
	}
	t.Logf("berryctl scores mixed:\n%s", func() string { _, o, _ := berryctl(t, nil, "--server", env.cp.addr, "scores", "mixed"); return o }())
}

// A backend failing at one edge is marked down for the fleet: another edge that never
// saw it fail opens its breaker and answers without calling it; once the backend
// serves again the breaker's half-open trial brings it back.
func TestFleetMarksFailingBackendDown(t *testing.T) {
	env := startFleetEnv(t, 3)
	a, b := env.edges[0], env.edges[1]
	// b uses the backend once, so it has a breaker and state for it.
	if r := chat(t, b.url, userToken, mixedBody("pin")); r.status != http.StatusOK {
		t.Fatalf("b on pin: %d %s", r.status, r.body)
	}
	env.slow.SetOptions(upstreamsim.Options{Name: "slow", APIKey: "key-s", FailStatus: http.StatusInternalServerError})
	for range 6 {
		chat(t, a.url, userToken, mixedBody("pin"))
	}
	eventually(t, "control plane marks sim-slow down", func() error {
		sc, err := env.score(t, "sim-slow")
		if err != nil {
			return err
		}
		if !sc.GetDown() {
			return fmt.Errorf("not down: error rate %.2f over %.1f requests", sc.GetErrorRate(), sc.GetRequests())
		}
		return nil
	})
	eventually(t, "edge b's breaker opens from the fleet mark", func() error {
		v, ok, err := b.metric(`berry_backend_fleet_down{backend="sim-slow/up-s"}`)
		if err != nil || !ok || v != 1 {
			return fmt.Errorf("fleet_down %v present %v err %v", v, ok, err)
		}
		return nil
	})
	before := env.slow.Stats().ChatRequests
	r := chat(t, b.url, userToken, mixedBody("pin"))
	if r.status != http.StatusServiceUnavailable {
		t.Fatalf("b on pin while the fleet marks it down: %d %s, want 503", r.status, r.body)
	}
	if n := env.slow.Stats().ChatRequests - before; n != 0 {
		t.Fatalf("b sent %d requests to a backend the fleet marked down", n)
	}

	env.slow.SetOptions(upstreamsim.Options{Name: "slow", APIKey: "key-s"})
	eventually(t, "b serves pin again after the backend recovers", func() error {
		if r := chat(t, b.url, userToken, mixedBody("pin")); r.status != http.StatusOK {
			return fmt.Errorf("%d %s", r.status, r.body)
		}
		return nil
	})
	eventually(t, "the fleet mark is lifted", func() error {
		sc, err := env.score(t, "sim-slow")
		if err != nil {
			return err
		}
		if sc.GetDown() {
			return fmt.Errorf("still down: error rate %.2f over %.1f requests", sc.GetErrorRate(), sc.GetRequests())
		}
		return nil
	})
}

// Coordinated probing: with 1 edge and with 5, the health probes reaching each
// upstream per interval are the same, because the control plane gives each provider's
// probes to one connected edge.
func TestFleetProbeTrafficIndependentOfEdgeCount(t *testing.T) {
	const window = 4 * time.Second // four probe intervals of 1s
	counts := map[int][2]int64{}
	for _, n := range []int{1, 5} {
		env := startFleetEnvConfig(t, n, "health_check_interval_seconds = 1\n")
		eventually(t, "probe owners assigned", func() error {
			for _, p := range []string{"sim-fast", "sim-slow"} {
				sc, err := env.score(t, p)
				if err != nil {
					return err
				}
				if sc.GetProbeOwner() == "" || !sc.GetProbed() {
					return fmt.Errorf("%s: owner %q, probed %v", p, sc.GetProbeOwner(), sc.GetProbed())
				}
			}
			return nil
		})
		// Let an owner that moved to the last edge to connect take its first probe.
		time.Sleep(1500 * time.Millisecond)
		env.fast.ResetStats()
		env.slow.ResetStats()
		time.Sleep(window)
		counts[n] = [2]int64{env.fast.Stats().Requests, env.slow.Stats().Requests}
		t.Logf("%d edge(s): %d probes to the fast upstream, %d to the slow one in %v", n, counts[n][0], counts[n][1], window)
		for _, e := range env.edges {
			e.stop(t)
		}
		env.cp.stop(t)
	}
	for i, name := range []string{"fast", "slow"} {
		one, five := counts[1][i], counts[5][i]
		if one == 0 {
			t.Fatalf("no probes reached the %s upstream with one edge", name)
		}
		// One interval of slack for where the window starts relative to the ticks.
		if five > one+1 {
			t.Fatalf("%s upstream: %d probes with 5 edges vs %d with 1 in %v; probing should not grow with the fleet", name, five, one, window)
		}
	}
}

// A control plane restart loses only the scores: edges keep serving their config, and
// once they reconnect the new instance's scores (whose epochs start over) rebuild from
// their reports and reach them.
func TestFleetScoresRebuildAfterControlPlaneRestart(t *testing.T) {
	env := startFleetEnv(t, 2)
	a, b := env.edges[0], env.edges[1]
	env.slow.SetOptions(upstreamsim.Options{Name: "slow", APIKey: "key-s", Latency: 300 * time.Millisecond})
	// a keeps measuring the slow backend in the background until the test ends.
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-stop:
				return
			default:
			}
			req, _ := http.NewRequest(http.MethodPost, a.url+"/v1/chat/completions", strings.NewReader(mixedBody("pin")))
			req.Header.Set("Authorization", "Bearer "+userToken)
			req.Header.Set("Content-Type", "application/json")
			if resp, err := http.DefaultClient.Do(req); err == nil {
				resp.Body.Close()
			}
		}
	}()
	defer func() { close(stop); <-done }()
	fleetSeen := func(what string) {
		t.Helper()
		eventually(t, what, func() error {
			v, ok, err := b.metric(`berry_backend_latency_seconds{backend="sim-slow/up-s",source="fleet"}`)
			if err != nil || !ok || v < 0.2 {
				return fmt.Errorf("b's fleet latency for sim-slow %v (present %v, err %v)", v, ok, err)
			}
			return nil
		})
	}
	fleetSeen("b has the fleet score before the restart")

	env.cp.stop(t)
	restarted := time.Now()
	p := startProc(t, "controlplane (restarted)", "berry-controlplane", "--data", filepath.Join(env.cpDir, "berry.db"),
		"--grpc-listen", env.cp.addr, "--score-interval", fleetReport.String())
	env.cp.proc = p
	for _, e := range env.edges {
		e.waitVersion(t, 1) // the config survived; nothing to re-apply
	}
	fleetSeen("b has the fleet score again after the restart")
	t.Logf("scores rebuilt and reached edge b %v after the control plane restarted (edge reconnect backoff included)",
		time.Since(restarted).Round(time.Millisecond))
	if r := chat(t, b.url, userToken, mixedBody("mixed")); r.status != http.StatusOK {
		t.Fatalf("b after the restart: %d %s", r.status, r.body)
	}
}
