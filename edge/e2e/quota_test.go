package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	berryv1 "github.com/berry-gateway/berry/pkg/api/berry/v1"
	"github.com/berry-gateway/berry/pkg/upstreamsim"
)

// The fleet's limits, with real edges and a real control plane on loopback: the
// tests drive demand above a key's limit through several edges at once and count
// what the fleet admitted.

func quotaTOML(simURL, limits string) string {
	return fmt.Sprintf(`
[settings]
request_timeout_seconds = 10

[providers.sim]
name = "sim"
base_url = %q
models = ["up"]

[models.m]
name = "m"
[[models.m.backends]]
provider = "sim"
model = "up"
price = { input_per_mtok = 100000.0, output_per_mtok = 100000.0 }

[users.k]
name = "limited"
token = "quota-key"
%s

[users.tok]
name = "tokens"
token = "tok-key"
rate_limit = { tokens_per_minute = 300 }

[users.free]
name = "free"
token = "free-key"
`, simURL, limits)
}

type quotaEnv struct {
	sim   *upstreamsim.Server
	cp    *controlPlane
	cpDir string
	edges []*edge
}

func startQuotaEnv(t *testing.T, edges int, limits string) *quotaEnv {
	t.Helper()
	env := &quotaEnv{sim: startSim(t, upstreamsim.Options{Name: "sim"}), cpDir: t.TempDir()}
	env.cp = startControlPlane(t, env.cpDir)
	v := importConfig(t, env.cp, quotaTOML(env.sim.URL(), limits))
	for i := range edges {
		e := startFleetEdge(t, env.cp.addr, fmt.Sprint("edge-", i+1))
		e.waitVersion(t, v)
		env.edges = append(env.edges, e)
	}
	return env
}

var quotaClient = &http.Client{Timeout: 10 * time.Second}

// send makes one chat request with key through e; it returns the status and the
// usage the answer reports.
func send(t *testing.T, e *edge, key string) (int, int64) {
	req, _ := http.NewRequest(http.MethodPost, e.url+"/v1/chat/completions",
		strings.NewReader(`{"model":"m","max_tokens":8,"messages":[{"role":"user","content":"hello there"}]}`))
	req.Header.Set("Authorization", "Bearer "+key)
	resp, err := quotaClient.Do(req)
	if err != nil {
		t.Error(err)
		return 0, 0
	}
	defer resp.Body.Close()
	var body struct {
		Usage struct {
			Total int64 `json:"total_tokens"`
		} `json:"usage"`
		Error *struct{ Code string } `json:"error"`
	}
	_ = json.NewDecoder(resp.Body).Decode(&body)
	if resp.StatusCode == 429 && (body.Error == nil || resp.Header.Get("Retry-After") == "") {
		t.Errorf("a 429 without an OpenAI-style error or Retry-After")
	}
	return resp.StatusCode, body.Usage.Total
}

// drive sends n requests with key over the edges — share[i] of them through edge i —
// at about rate per second, and counts the admitted ones and their tokens.
func drive(t *testing.T, edges []*edge, key string, n int, share []float64, rate float64) (admitted, tokens int64) {
	var wg sync.WaitGroup
	var ok, toks atomic.Int64
	tick := time.NewTicker(time.Duration(float64(time.Second) / rate))
	defer tick.Stop()
	acc := make([]float64, len(edges))
	for range n {
		<-tick.C
		// Weighted round robin: the edge furthest behind its share goes next.
		best := 0
		for j := range edges {
			acc[j] += share[j]
			if acc[j] > acc[best] {
				best = j
			}
		}
		acc[best]--
		wg.Go(func() {
			if st, used := send(t, edges[best], key); st == 200 {
				ok.Add(1)
				toks.Add(used)
			}
		})
	}
	wg.Wait()
	return ok.Load(), toks.Load()
}

// awaitMinuteStart waits until the current minute has at least need left.
func awaitMinuteStart(need time.Duration) {
	now := time.Now()
	if left := now.Truncate(time.Minute).Add(time.Minute).Sub(now); left < need {
		time.Sleep(left + 200*time.Millisecond)
	}
}

func TestFleetRequestLimit(t *testing.T) {
	if testing.Short() {
		t.Skip("drives load for up to a minute")
	}
	env := startQuotaEnv(t, 4, `rate_limit = { requests_per_minute = 60 }`)
	for _, tt := range []struct {
		name  string
		share []float64
	}{
		{"skewed 80/10/5/5", []float64{0.8, 0.1, 0.05, 0.05}},
		{"even", []float64{0.25, 0.25, 0.25, 0.25}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			awaitMinuteStart(35 * time.Second)
			start := time.Now()
			var got, toks int64
			var wg sync.WaitGroup
			// 180 requests (3× the limit) in about 25 s; and, in the same minute, a key
			// limited to 300 tokens a minute asked for about 3.5× that.
			wg.Go(func() { got, _ = drive(t, env.edges, "quota-key", 180, tt.share, 7.2) })
			wg.Go(func() { _, toks = drive(t, env.edges, "tok-key", 180, tt.share, 7.2) })
			wg.Wait()
			if time.Now().Truncate(time.Minute) != start.Truncate(time.Minute) {
				t.Fatal("the run crossed a minute boundary; it proves nothing")
			}
			t.Logf("fleet admitted %d of 180 requests against a limit of 60 (%+d), and %d tokens against 300 (%+d)",
				got, got-60, toks, toks-300)
			if got < 57 || got > 63 {
				t.Errorf("fleet admitted %d requests in the minute, want 57–63", got)
			}
			// A request is admitted on whatever credit its edge has left and settles
			// to what it used (about 10 tokens here): each edge may end one request
			// over; credit left on edges is the shortfall.
			if toks < 270 || toks > 300+4*10 {
				t.Errorf("fleet admitted %d tokens in the minute, want 270–340", toks)
			}
		})
	}
}

// usageTotals reads the ledger's totals for key.
func usageTotals(t *testing.T, cp *controlPlane, key string) *berryv1.UsageRow {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	resp, err := cp.admin.GetUsage(ctx, &berryv1.GetUsageRequest{Key: key})
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.GetRows()) == 0 {
		return &berryv1.UsageRow{}
	}
	return resp.GetRows()[0]
}

// TestFleetBudgetAndLedger: a budget stops a key within one request of it, and the
// ledger holds exactly the usage the upstream reported.
func TestFleetBudgetAndLedger(t *testing.T) {
	// $0.1 a token; a request uses about 6, reserves about 14.
	env := startQuotaEnv(t, 3, `budget = { usd_per_day = 5.0 }`)
	var admitted, tokens int64
	// Until the key has been refused 30 times in a row (3 s): the budget is spent (credit
	// arriving late only delays that).
	for i, refused := 0, 0; refused < 30 && i < 300; i++ {
		st, used := send(t, env.edges[i%3], "quota-key")
		if st == 200 {
			admitted++
			tokens += used
			refused = 0
		} else {
			refused++
		}
		time.Sleep(100 * time.Millisecond)
	}
	spent := float64(tokens) * 0.1
	t.Logf("budget $5: %d requests admitted, $%.2f spent", admitted, spent)
	if spent > 5.0+1.5 || spent < 5.0-1.5 {
		t.Fatalf("spent $%.2f of a $5 budget; want within one request of it", spent)
	}
	var row *berryv1.UsageRow
	eventually(t, "the ledger has every admitted request", func() error {
		row = usageTotals(t, env.cp, "k")
		if int64(row.GetRequests()) != admitted {
			return fmt.Errorf("ledger has %d requests, %d admitted", row.GetRequests(), admitted)
		}
		return nil
	})
	if got := int64(row.GetPromptTokens() + row.GetCompletionTokens()); got != tokens || row.GetEstimated() != 0 {
		t.Fatalf("ledger: %d tokens (%d estimated requests), the upstream reported %d", got, row.GetEstimated(), tokens)
	}
	if diff := row.GetCostUsd() - spent; diff > 1e-6 || diff < -1e-6 {
		t.Fatalf("ledger cost $%f, want $%f", row.GetCostUsd(), spent)
	}
}

// TestFleetLimitWithoutControlPlane: the control plane goes away for a while and comes
// back; the fleet never admits more than the limit (the "share" rule: each edge its
// part of what the limit allows), and the counters survive the restart.
func TestFleetLimitWithoutControlPlane(t *testing.T) {
	const limit = 40
	env := startQuotaEnv(t, 4, fmt.Sprintf(`rate_limit = { requests_per_day = %d }`, limit))
	even := []float64{0.25, 0.25, 0.25, 0.25}
	before, _ := drive(t, env.edges, "quota-key", 20, even, 10)
	env.cp.stop(t)
	during, _ := drive(t, env.edges, "quota-key", 120, even, 10) // 12 s without a control plane
	p := startProc(t, "controlplane (restarted)", "berry-controlplane", "--data", env.cpDir+"/berry.db", "--grpc-listen", env.cp.addr)
	env.cp.proc = p
	eventually(t, "the restarted control plane answers", func() error {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_, err := env.cp.admin.GetCurrentVersion(ctx, &berryv1.GetCurrentVersionRequest{})
		return err
	})
	time.Sleep(3 * time.Second) // edges reconnect and report
	after, _ := drive(t, env.edges, "quota-key", 40, even, 10)
	total := before + during + after
	t.Logf("limit %d a day: %d admitted with the control plane, %d while it was down, %d after its restart", limit, before, during, after)
	if total > limit {
		t.Fatalf("the fleet admitted %d, over the limit of %d", total, limit)
	}
	if total < limit-4 {
		t.Fatalf("the fleet admitted only %d of a limit of %d with 3× the demand", total, limit)
	}
}

// TestLedgerSurvivesControlPlaneKill: the control plane is killed (SIGKILL) while
// edges report; the ledger then lacks at most what arrived since its last write and
// what was on the wire, and never counts a request twice.
func TestLedgerSurvivesControlPlaneKill(t *testing.T) {
	env := startQuotaEnv(t, 3, "")
	even := []float64{1.0 / 3, 1.0 / 3, 1.0 / 3}
	const rate = 10.0
	first, _ := drive(t, env.edges, "free-key", 40, even, rate)
	_ = env.cp.cmd.Process.Kill()
	<-env.cp.done
	p := startProc(t, "controlplane (restarted)", "berry-controlplane", "--data", env.cpDir+"/berry.db", "--grpc-listen", env.cp.addr)
	env.cp.proc = p
	second, _ := drive(t, env.edges, "free-key", 40, even, rate)
	admitted := first + second
	var got int64
	// Edges reconnect (with backoff) and report what they held; then the ledger is
	// written within a second.
	deadline := time.Now().Add(40 * time.Second)
	for time.Now().Before(deadline) {
		got = int64(usageTotals(t, env.cp, "free").GetRequests())
		if got >= admitted-int64(2*rate) {
			break
		}
		time.Sleep(500 * time.Millisecond)
	}
	t.Logf("%d requests admitted around a SIGKILL of the control plane; the ledger has %d (lost %d)", admitted, got, admitted-got)
	if got > admitted {
		t.Fatalf("the ledger counts %d requests, more than the %d admitted", got, admitted)
	}
	// What arrived since the last write (a flush interval, 1 s) and what was on the
	// wire (a report interval, 0.2 s here), at 10 requests a second: 12; twice that
	// for a loaded machine's late flush.
	if admitted-got > int64(2*1.2*rate)+3 {
		t.Fatalf("the ledger lost %d of %d requests", admitted-got, admitted)
	}
}
