package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	cdplog "github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	berryv1 "github.com/berry-gateway/berry/pkg/api/berry/v1"
	"github.com/berry-gateway/berry/pkg/upstreamsim"
)

// The web console in a real browser: headless Chromium (Debian's chromium package)
// driven over the DevTools protocol, against a real control plane with real edges
// and traffic from the upstream simulator. Each step writes a screenshot to the
// artifact folder ($BERRY_CONSOLE_ARTIFACTS, else a new temporary folder, logged).

// consoleTimeout bounds a whole console test, browser start included.
const consoleTimeout = 4 * time.Minute

// consoleTOML: model "mixed" spreads requests over both simulators, model "pin"
// uses only sim-slow, the one the test slows down.
func consoleTOML(fastURL, slowURL string) string {
	return fmt.Sprintf(`
[settings]
request_timeout_seconds = 10
max_retries = 0

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
strategy = "round_robin"

[[models.mixed.backends]]
provider = "sim-fast"
model = "up-f"
price = { input_per_mtok = 2.0, output_per_mtok = 8.0 }

[[models.mixed.backends]]
provider = "sim-slow"
model = "up-s"
price = { input_per_mtok = 2.0, output_per_mtok = 8.0 }

[models.pin]
name = "pin"

[[models.pin.backends]]
provider = "sim-slow"
model = "up-s"

[users.alice]
name = "Alice"
token = %q

[users.bob]
name = "Bob"
token = %q
rate_limit = { requests_per_day = 10 }
`, fastURL, slowURL, userToken, bobToken)
}

// bobToken is the key of a user with a small daily request limit.
const bobToken = "console-bob-token"

// consoleEnv is a control plane serving the console on its HTTP address, two edges
// and two simulators.
type consoleEnv struct {
	fast, slow *upstreamsim.Server
	cp         *securedCP
	url        string // the console's address, http://127.0.0.1:port/console/
	edges      []*edge
}

func startConsoleEnv(t *testing.T) *consoleEnv {
	t.Helper()
	env := &consoleEnv{
		fast: startSim(t, upstreamsim.Options{Name: "fast", APIKey: "key-f", Latency: 20 * time.Millisecond}),
		slow: startSim(t, upstreamsim.Options{Name: "slow", APIKey: "key-s", Latency: 20 * time.Millisecond}),
	}
	httpAddr := freeAddr(t)
	env.cp = startSecuredCP(t, filepath.Join(t.TempDir(), "berry.db"), "",
		"--http-listen", httpAddr, "--score-interval", fleetReport.String())
	env.url = "http://" + httpAddr + "/console/"
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	r, err := env.cp.admin.ImportConfig(ctx, &berryv1.ImportConfigRequest{Toml: consoleTOML(env.fast.URL(), env.slow.URL()), Message: "seed for the console test"})
	if err != nil {
		t.Fatalf("ImportConfig: %v", err)
	}
	for _, id := range []string{"console-a", "console-b"} {
		addr := freeAddr(t)
		p := startProc(t, "edge "+id, "berry-edge", "--listen", addr, "--control-plane", env.cp.addr, "--edge-id", id,
			"--token", edgeToken, "--cache-dir", t.TempDir(), "--report-interval", fleetReport.String())
		e := &edge{proc: p, url: "http://" + addr}
		e.waitVersion(t, r.GetVersion())
		env.edges = append(env.edges, e)
	}
	return env
}

// browser is one headless Chromium with one tab, and what its pages logged.
type browser struct {
	t         *testing.T
	ctx       context.Context
	artifacts string
	mu        sync.Mutex
	problems  []string // uncaught exceptions, console errors, CSP violations
}

// chromiumPath finds Debian's Chromium, or skips the test saying how to get it.
func chromiumPath(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Skip("the console's browser tests need Chromium, which is not installed: " +
		"`apt-get install chromium` (Debian's package; .ci/tools-browser installs it when run as root)")
	return ""
}

// artifactDir is where screenshots go: $BERRY_CONSOLE_ARTIFACTS, or a new temporary
// folder that is kept after the test so the pictures can be looked at.
func artifactDir(t *testing.T) string {
	t.Helper()
	dir := os.Getenv("BERRY_CONSOLE_ARTIFACTS")
	if dir == "" {
		var err error
		if dir, err = os.MkdirTemp("", "berry-console-"); err != nil {
			t.Fatal(err)
		}
	} else if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Logf("console screenshots go to %s", dir)
	return dir
}

func startBrowser(t *testing.T) *browser {
	t.Helper()
	path := chromiumPath(t)
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(path),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("disable-extensions", true),
		// A laptop's screen.
		chromedp.WindowSize(1440, 900),
	}
	// No user-data-dir: chromedp makes a fresh one per browser, and on cancel kills
	// the browser's PID and every process still started with that directory.
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	ctx, cancelTimeout := context.WithTimeout(ctx, consoleTimeout)
	b := &browser{t: t, ctx: ctx, artifacts: artifactDir(t)}
	if err := chromedp.Listen(ctx, b.observe); err != nil {
		cancelTimeout()
		cancel()
		cancelAlloc()
		t.Fatalf("starting Chromium (%s): %v", path, err)
	}
	if _, err := chromedp.Call(ctx, cdplog.Enable, cdp.Empty{}); err != nil {
		t.Fatalf("Log.enable: %v", err)
	}
	pid := 0
	if c := chromedp.FromContext(ctx); c != nil && c.Browser != nil && c.Browser.Process() != nil {
		pid = c.Browser.Process().Pid
	}
	t.Cleanup(func() {
		cancelTimeout()
		cancel()
		cancelAlloc() // waits for the browser to exit
		if pid != 0 && syscall.Kill(pid, 0) == nil {
			t.Errorf("Chromium (pid %d) still runs after the test; killing it", pid)
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
		b.mu.Lock()
		defer b.mu.Unlock()
		for _, p := range b.problems {
			t.Errorf("the page reported: %s", p)
		}
	})
	return b
}

// observe keeps what the pages report that a user would not see: uncaught
// exceptions, console errors and the browser's own errors (a CSP violation is one).
// Refused API calls are the pages' business: the browser logs their status as a
// network error, which is expected where the test sends a wrong token.
func (b *browser) observe(ev any) {
	var p string
	switch ev := ev.(type) {
	case *runtime.EventExceptionThrown:
		p = "uncaught exception: " + (&chromedp.ExceptionError{ExceptionDetails: ev.ExceptionDetails}).Error()
	case *runtime.EventConsoleAPICalled:
		if ev.Type == runtime.ConsoleAPICalledTypeError {
			var args []string
			for _, a := range ev.Args {
				args = append(args, string(a.Value)+a.Description)
			}
			p = "console.error: " + strings.Join(args, " ")
		}
	case *cdplog.EventEntryAdded:
		if ev.Entry.Level == cdplog.EntryLevelError && ev.Entry.Source != cdplog.EntrySourceNetwork {
			p = fmt.Sprintf("%s error: %s (%s)", ev.Entry.Source, ev.Entry.Text, ev.Entry.URL)
		}
	}
	if p != "" {
		b.mu.Lock()
		b.problems = append(b.problems, p)
		b.mu.Unlock()
	}
}

func (b *browser) do(what string, steps ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	if err := chromedp.Do(b.ctx, steps...); err != nil {
		b.shot("failed-" + strings.ReplaceAll(what, " ", "-"))
		b.t.Fatalf("%s: %v", what, err)
	}
}

// eval runs a JavaScript expression in the page and decodes its value.
func eval[T any](b *browser, expr string) T {
	b.t.Helper()
	v, err := chromedp.Run(b.ctx, chromedp.Evaluate[T](expr))
	if err != nil {
		b.t.Fatalf("evaluate %s: %v", expr, err)
	}
	return v
}

// waitText waits until the text of the element sel contains every one of want,
// polling the page as a user would look at it.
func (b *browser) waitText(what, sel string, want ...string) string {
	b.t.Helper()
	return b.waitFor(what, 30*time.Second, func() (string, error) {
		text, err := chromedp.Run(b.ctx, chromedp.Evaluate[string](fmt.Sprintf(`(document.querySelector(%q) || {}).innerText || ''`, sel)))
		if err != nil {
			return "", err
		}
		for _, w := range want {
			if !strings.Contains(text, w) {
				return text, fmt.Errorf("%s does not say %q yet; it says:\n%s", sel, w, text)
			}
		}
		return text, nil
	})
}

// waitFor polls f until it succeeds or limit passes, then fails the test with f's
// last error and a screenshot.
func (b *browser) waitFor(what string, limit time.Duration, f func() (string, error)) string {
	b.t.Helper()
	deadline := time.Now().Add(limit)
	for {
		v, err := f()
		if err == nil {
			return v
		}
		if time.Now().After(deadline) || b.ctx.Err() != nil {
			b.shot("failed-" + strings.ReplaceAll(what, " ", "-"))
			b.t.Fatalf("%s: still not so after %v: %v", what, limit, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// shot writes a full-page screenshot (PNG) of the tab to the artifact folder.
func (b *browser) shot(name string) {
	b.t.Helper()
	png, err := chromedp.Run(b.ctx, chromedp.FullScreenshot(100))
	if err != nil {
		b.t.Logf("screenshot %s: %v", name, err)
		return
	}
	path := filepath.Join(b.artifacts, name+".png")
	if err := os.WriteFile(path, png, 0o644); err != nil {
		b.t.Errorf("writing %s: %v", path, err)
	}
}

// checkLabels fails the test for any visible form control a screen reader could
// not name (no label, no aria-label), and for any image without a text equivalent.
func (b *browser) checkLabels(page string) {
	b.t.Helper()
	unnamed := eval[[]string](b, `[...document.querySelectorAll('input, select, textarea, button, svg[role=img], img')]
		.filter(e => e.checkVisibility() && e.type !== 'hidden')
		.filter(e => !(e.labels && e.labels.length) && !e.getAttribute('aria-label') && !e.getAttribute('aria-labelledby') &&
			!(e.tagName === 'BUTTON' && e.innerText.trim()) && !(e.tagName === 'IMG' && e.hasAttribute('alt')))
		.map(e => e.outerHTML.slice(0, 120))`)
	for _, u := range unnamed {
		b.t.Errorf("%s: a control or image without an accessible name: %s", page, u)
	}
}

// control returns a selector for the form control labelled label within scope.
func (b *browser) control(scope, label string) string {
	b.t.Helper()
	id := eval[string](b, fmt.Sprintf(`(() => { const l = [...document.querySelectorAll(%q)].find(l => l.innerText.trim() === %q);
		return l ? l.htmlFor : ''; })()`, scope+" label", label))
	if id == "" {
		b.shot("failed-control")
		b.t.Fatalf("no control labelled %q in %s", label, scope)
	}
	return "#" + id
}

// setSelect picks value in a <select> and tells the page, as a user's pick would.
func (b *browser) setSelect(sel, value string) {
	b.t.Helper()
	ok := eval[bool](b, fmt.Sprintf(`(() => { const s = document.querySelector(%q); if (!s || ![...s.options].some(o => o.value === %q)) return false;
		s.value = %q; s.dispatchEvent(new Event('change', {bubbles: true})); return true; })()`, sel, value, value))
	if !ok {
		b.shot("failed-select")
		b.t.Fatalf("no option %q in %s", value, sel)
	}
}

// fill replaces the value of the input sel, typing like a user.
func (b *browser) fill(sel, value string) {
	b.t.Helper()
	if !eval[bool](b, fmt.Sprintf(`(() => { const e = document.querySelector(%q); if (!e) return false; e.value = ''; return true; })()`, sel)) {
		b.shot("failed-fill")
		b.t.Fatalf("no %s to fill", sel)
	}
	b.do("fill "+sel, chromedp.SendKeys(chromedp.CSS(sel), value))
}

func (b *browser) login(url, token string) {
	b.t.Helper()
	b.do("open the console", chromedp.Navigate(url), chromedp.WaitVisible(chromedp.CSS("#token")))
	b.fill("#token", token)
	b.do("submit the token", chromedp.Click(chromedp.CSS("#login-submit")))
}

// chatWith sends one chat completion with key through e.
func chatWith(e *edge, key, model string) (int, error) {
	req, err := http.NewRequest(http.MethodPost, e.url+"/v1/chat/completions", strings.NewReader(mixedBody(model)))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Authorization", "Bearer "+key)
	req.Header.Set("Content-Type", "application/json")
	resp, err := quotaClient.Do(req)
	if err != nil {
		return 0, err
	}
	resp.Body.Close()
	return resp.StatusCode, nil
}

// currentVersion asks the control plane over gRPC, as berryctl would.
func (env *consoleEnv) currentVersion(t *testing.T) uint64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	r, err := env.cp.admin.GetCurrentVersion(ctx, &berryv1.GetCurrentVersionRequest{})
	if err != nil {
		t.Fatal(err)
	}
	return r.GetVersion()
}

func (env *consoleEnv) provider(t *testing.T, id string) *berryv1.Provider {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	r, err := env.cp.admin.GetProvider(ctx, &berryv1.GetProviderRequest{Id: id})
	if err != nil {
		t.Fatal(err)
	}
	return r.GetProvider()
}

// A wrong token is refused at the login, and nothing of the fleet shows; the right
// one opens the Fleet page, which lists both edges on the current version.
func TestConsoleLoginAndFleet(t *testing.T) {
	chromiumPath(t) // skips before anything starts
	env := startConsoleEnv(t)
	b := startBrowser(t)

	b.login(env.url, "not-the-token")
	b.waitText("a wrong token is refused", "#login-msg", "Token refused")
	if n := eval[int](b, `document.querySelectorAll('#edge-table').length + (document.querySelector('#nav').checkVisibility() ? 1 : 0)`); n != 0 {
		t.Fatal("the fleet or the pages' navigation shows after a refused token")
	}
	if tok := eval[string](b, `sessionStorage.getItem('berry.console.token') || ''`); tok != "" {
		t.Fatalf("a refused token stays in session storage: %q", tok)
	}
	b.checkLabels("login")
	b.shot("login-refused")

	// By keyboard: the token, then Enter.
	b.fill("#token", adminToken+kb.Enter)
	v := fmt.Sprint(env.currentVersion(t))
	b.waitText("the fleet is rolled out", "#rollout", "Version "+v+" is rolled out", "all 2 connected edges")
	text := b.waitText("both edges listed", "#edge-table", "console-a", "console-b")
	for _, id := range []string{"console-a", "console-b"} {
		applied := eval[string](b, fmt.Sprintf(`document.querySelector('tr[data-edge=%q] td.version').innerText`, id))
		if strings.TrimSpace(applied) != v {
			t.Fatalf("edge %s shows applied version %q, want %s\n%s", id, applied, v, text)
		}
	}
	if c := eval[int](b, `document.cookie.length`); c != 0 {
		t.Fatalf("the console set a cookie: %q", eval[string](b, `document.cookie`))
	}
	b.checkLabels("fleet")
	b.shot("fleet")

	// An edge that stops is shown disconnected; the roll-out counts the others.
	env.edges[1].stop(t)
	b.waitText("a stopped edge shows disconnected", `tr[data-edge="console-b"]`, "disconnected")
	b.waitText("the roll-out counts connected edges", "#rollout", "the one connected edge has applied it")
	b.shot("fleet-one-edge-gone")

	// A reload keeps the session (the token is in this tab's session storage).
	b.do("reload", chromedp.Reload(), chromedp.WaitVisible(chromedp.CSS("#edge-table")))
}

// The Backends page: a simulator slowed down shows as slow, in its models' tables,
// while the other stays ok; the Usage page then shows the traffic per key.
func TestConsoleBackendsAndUsage(t *testing.T) {
	chromiumPath(t) // skips before anything starts
	env := startConsoleEnv(t)
	b := startBrowser(t)
	b.login(env.url+"#/backends", adminToken)
	b.waitText("backends listed", "#backends", "sim-fast/up-f", "sim-slow/up-s")

	// Traffic on both edges, both backends, until the test ends.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for i, e := range env.edges {
		wg.Go(func() {
			for n := 0; ; n++ {
				select {
				case <-stop:
					return
				default:
				}
				model := "mixed"
				if (n+i)%3 == 0 {
					model = "pin"
				}
				if _, err := chatWith(e, userToken, model); err != nil {
					time.Sleep(50 * time.Millisecond)
				}
				time.Sleep(20 * time.Millisecond)
			}
		})
	}
	defer func() { close(stop); wg.Wait() }()

	state := func(backend string) (string, error) {
		return chromedp.Run(b.ctx, chromedp.Evaluate[string](fmt.Sprintf(
			`[...document.querySelectorAll('tr[data-backend=%q]')].map(r => r.dataset.state).join(',')`, backend)))
	}
	b.waitFor("both backends measured and ok", 30*time.Second, func() (string, error) {
		f, err := state("sim-fast/up-f")
		if err != nil {
			return "", err
		}
		s, err := state("sim-slow/up-s")
		if err != nil {
			return "", err
		}
		if f != "ok" || s != "ok,ok" {
			return "", fmt.Errorf("sim-fast %q, sim-slow %q", f, s)
		}
		return "", nil
	})
	b.shot("backends-ok")

	env.slow.SetOptions(upstreamsim.Options{Name: "slow", APIKey: "key-s", Latency: 700 * time.Millisecond})
	b.waitFor("the slowed simulator stands out as slow", 60*time.Second, func() (string, error) {
		s, err := state("sim-slow/up-s")
		if err != nil {
			return "", err
		}
		if s != "slow,slow" {
			return "", fmt.Errorf("sim-slow/up-s shows %q (latency %s)", s,
				eval[string](b, `(document.querySelector('tr[data-backend="sim-slow/up-s"] td.latency') || {}).innerText`))
		}
		return "", nil
	})
	if f, _ := state("sim-fast/up-f"); f != "ok" {
		t.Fatalf("sim-fast/up-f shows %q while only sim-slow was slowed", f)
	}
	b.waitText("the summary names it", "#backends", "Needs a look: sim-slow/up-s (slow)")
	if n := eval[int](b, `document.querySelectorAll('tr[data-backend="sim-slow/up-s"] svg.spark path.line').length`); n != 2 {
		t.Fatalf("sim-slow's sparklines: %d drawn, want 2", n)
	}
	b.checkLabels("backends")
	b.shot("backends-slow")

	// Bob uses 9 of his 10 requests of the day: near his limit. The edge admits
	// them as the fleet's leases reach it (a 429 says to retry shortly).
	admitted := 0
	deadline := time.Now().Add(30 * time.Second)
	for admitted < 9 && time.Now().Before(deadline) {
		st, err := chatWith(env.edges[0], bobToken, "mixed")
		switch {
		case err != nil:
			t.Fatal(err)
		case st == http.StatusOK:
			admitted++
		case st == http.StatusTooManyRequests:
			time.Sleep(300 * time.Millisecond)
		default:
			t.Fatalf("bob's request: %d", st)
		}
	}
	if admitted < 9 {
		t.Fatalf("bob got %d of 9 requests admitted under a limit of 10 a day", admitted)
	}
	// The usage of the traffic reaches the ledger and the Usage page.
	b.do("open Usage", chromedp.Click(chromedp.CSS(`nav a[data-page="usage"]`)))
	b.waitText("alice's usage shows", "#top-keys", "alice")
	b.waitText("the chart draws alice", "#usage-chart", "alice")
	b.waitText("bob is near his daily request limit", "#quota-table", "bob", "requests per day")
	b.waitText("the page says so", "#usage-near", "1 limit at 80.0% or more")
	if n := eval[int](b, `document.querySelectorAll('#usage-chart svg.chart path.line, #usage-chart svg.chart circle.pt').length`); n == 0 {
		t.Fatal("the usage chart draws nothing")
	}
	b.setSelect("#usage-by", "model")
	b.waitText("the chart per model", "#usage-chart", "mixed", "pin")
	b.setSelect("#usage-by", "key")
	b.checkLabels("usage")
	b.shot("usage")

	// The slowed simulator now fails every request. Whether the fleet marks it down
	// depends on how many attempts the edges make before their own breakers open;
	// the page shows it failing either way.
	env.slow.SetOptions(upstreamsim.Options{Name: "slow", APIKey: "key-s", FailStatus: http.StatusInternalServerError})
	b.do("open Backends", chromedp.Click(chromedp.CSS(`nav a[data-page="backends"]`)))
	shown := b.waitFor("the failing simulator stands out", 60*time.Second, func() (string, error) {
		s, err := state("sim-slow/up-s")
		if err == nil && s != "down,down" && s != "failing,failing" {
			err = fmt.Errorf("sim-slow/up-s shows %q", s)
		}
		return s, err
	})
	b.waitText("the summary names it", "#backends", "sim-slow/up-s ("+strings.Split(shown, ",")[0]+")")
	if n := eval[int](b, `document.querySelectorAll('tr.row-bad[data-backend="sim-slow/up-s"]').length`); n != 2 {
		t.Fatalf("%d of sim-slow's 2 rows are marked bad", n)
	}
	b.shot("backends-failing")
}

// Keys: a key created in the console works at an edge once the version reaches it,
// and stops working when the console disables it.
func TestConsoleKeys(t *testing.T) {
	chromiumPath(t) // skips before anything starts
	env := startConsoleEnv(t)
	b := startBrowser(t)
	b.login(env.url+"#/keys", adminToken)
	b.waitText("the keys are listed", "#key-table", "alice")

	b.fill("#key-id", "browser-key")
	b.fill("#key-name", "made in the browser")
	b.fill("#key-message", "a key for the console test")
	b.do("tick model mixed", chromedp.Click(chromedp.CSS(`#create-form input[type=checkbox][value="mixed"]`)))
	b.do("create the key", chromedp.Click(chromedp.CSS("#create-key")))
	b.waitText("the key is shown once", "#create-result", `Key "browser-key" created`)
	key := eval[string](b, `document.querySelector('#new-key').value`)
	if !strings.HasPrefix(key, "sk-") && len(key) < 20 {
		t.Fatalf("the key shown is %q", key)
	}
	b.checkLabels("keys")
	b.shot("keys-created")
	b.do("hide the key", chromedp.Click(chromedp.CSS("#forget-key")))
	b.waitText("the key is no longer shown", "#create-result", "no longer shown")
	if n := eval[int](b, `document.querySelectorAll('#new-key').length`); n != 0 || strings.Contains(eval[string](b, `document.body.innerHTML`), key) {
		t.Fatal("the key is still in the page after it was hidden")
	}
	v := env.currentVersion(t)
	for _, e := range env.edges {
		e.waitVersion(t, v)
		if st, err := chatWith(e, key, "mixed"); err != nil || st != http.StatusOK {
			t.Fatalf("the new key at %s: %d %v", e.name, st, err)
		}
		if st, err := chatWith(e, key, "pin"); err != nil || st != http.StatusForbidden {
			t.Fatalf("the new key on a model it may not use, at %s: %d %v, want 403", e.name, st, err)
		}
	}
	b.waitText("the new key is listed", "#key-table", "browser-key", "made in the browser")

	// Bob's daily limit raised through his form.
	b.do("edit bob", chromedp.Click(chromedp.CSS(`tr[data-key="bob"] button[data-action="edit"]`)))
	b.fill(b.control("#key-edit", "Requests per day"), "25")
	b.do("review", chromedp.Click(chromedp.CSS("#key-review")))
	b.waitText("bob's dry run", "#review-changes", "users.bob.rate_limit", "requests_per_day", "25")
	b.do("apply", chromedp.Click(chromedp.CSS("#apply")))
	b.waitText("bob's change rolls out", "#apply-result", "is rolled out")
	b.waitText("the table shows the new limit", `tr[data-key="bob"]`, "25 req/day")

	b.do("disable it", chromedp.Click(chromedp.CSS(`tr[data-key="browser-key"] button[data-action="disable"]`)))
	b.waitText("disabled and rolled out", "#key-status", "Key browser-key disabled", "is rolled out")
	for _, e := range env.edges {
		if st, err := chatWith(e, key, "mixed"); err != nil || st != http.StatusUnauthorized {
			t.Fatalf("the disabled key at %s: %d %v, want 401", e.name, st, err)
		}
	}
	b.shot("keys")
}

// Config: an invalid form edit shows the control plane's validation error and
// writes nothing; a valid one shows its dry-run diff, is applied and rolls out;
// two versions are compared side by side; a rollback, confirmed, restores the old
// version everywhere.
func TestConsoleConfigEditDiffRollback(t *testing.T) {
	chromiumPath(t) // skips before anything starts
	env := startConsoleEnv(t)
	b := startBrowser(t)
	b.login(env.url+"#/config?edit=provider:sim-fast", adminToken)
	b.waitFor("the provider form is filled", 20*time.Second, func() (string, error) {
		v, err := chromedp.Run(b.ctx, chromedp.Evaluate[string](`(document.querySelector('#edit-form input[type=url]') || {}).value || ''`))
		if err == nil && v != env.fast.URL() {
			err = fmt.Errorf("base URL field holds %q", v)
		}
		return v, err
	})
	before := env.currentVersion(t)

	// An invalid base URL: the same error berryctl gets, nothing written.
	b.fill("#edit-form input[type=url]", "ftp://nowhere")
	b.do("review", chromedp.Click(chromedp.CSS("#review-button")))
	errs := b.waitText("the validation error shows", "#validation-errors", "providers.sim-fast.base_url")
	if got := env.currentVersion(t); got != before {
		t.Fatalf("an invalid edit wrote version %d", got)
	}
	b.shot("config-invalid")
	t.Logf("the console shows: %s", errs)

	// A valid edit: rename the provider.
	b.fill("#edit-form input[type=url]", env.fast.URL())
	b.fill("#edit-form fieldset input[type=text]:not([readonly])", "fast simulator, renamed")
	b.fill("#edit-message", "rename sim-fast")
	b.do("review", chromedp.Click(chromedp.CSS("#review-button")))
	b.waitText("the dry run shows the diff", "#review-changes", "providers.sim-fast.name", `"fast simulator, renamed"`)
	if n := eval[int](b, `document.querySelectorAll('#review-changes tbody tr').length`); n != 1 {
		t.Fatalf("the dry run lists %d changes for one renamed field:\n%s", n, eval[string](b, `document.querySelector('#review-changes').innerText`))
	}
	if got := env.currentVersion(t); got != before {
		t.Fatalf("the dry run wrote version %d", got)
	}
	b.shot("config-review")
	b.do("apply", chromedp.Click(chromedp.CSS("#apply")))
	b.waitText("the new version rolls out", "#apply-result", fmt.Sprintf("Version %d is rolled out", before+1), "all 2 connected edges")
	for _, e := range env.edges {
		e.waitVersion(t, before+1)
	}
	p := env.provider(t, "sim-fast")
	if p.GetName() != "fast simulator, renamed" || !p.GetApiKeySet() {
		t.Fatalf("after the form's write: name %q, api key kept %v", p.GetName(), p.GetApiKeySet())
	}
	if st, err := chatWith(env.edges[0], userToken, "mixed"); err != nil || st != http.StatusOK {
		t.Fatalf("a request after the edit: %d %v (the provider's key must have been kept)", st, err)
	}
	b.shot("config-applied")

	// Diff the two versions side by side.
	b.do("pick the versions", chromedp.Click(chromedp.CSS(fmt.Sprintf(`input[name=diff-from][value="%d"]`, before))),
		chromedp.Click(chromedp.CSS(fmt.Sprintf(`input[name=diff-to][value="%d"]`, before+1))),
		chromedp.Click(chromedp.CSS("#diff-button")))
	b.waitText("the field diff", "#diff-fields", "providers.sim-fast.name", `"fast"`, `"fast simulator, renamed"`)
	b.waitText("the side-by-side diff", "#diff-side-by-side", `name = "fast"`, `name = "fast simulator, renamed"`)
	b.checkLabels("config")
	b.shot("config-diff")

	// Roll back, with confirmation.
	b.do("ask to roll back", chromedp.Click(chromedp.CSS(fmt.Sprintf(`button[data-rollback="%d"]`, before))))
	b.waitText("the confirmation shows what changes", "#rollback-dialog", "Roll back to version", "providers.sim-fast.name")
	if got := env.currentVersion(t); got != before+1 {
		t.Fatalf("asking for a rollback wrote version %d before it was confirmed", got)
	}
	b.checkLabels("rollback confirmation")
	b.shot("config-rollback-confirm")
	b.do("confirm", chromedp.Click(chromedp.CSS("#rollback-confirm")))
	b.waitText("the rollback rolls out", "#rollout-status", fmt.Sprintf("Version %d is rolled out", before+2))
	for _, e := range env.edges {
		e.waitVersion(t, before+2)
	}
	if p := env.provider(t, "sim-fast"); p.GetName() != "fast" {
		t.Fatalf("after the rollback the provider is named %q", p.GetName())
	}
	b.waitText("the history shows the rollback", "#version-table", fmt.Sprintf("roll back to version %d", before))
	b.shot("config")

	// The model form: a strategy and a backend's weight changed, reviewed, applied.
	b.setSelect("#edit-kind", "model")
	b.setSelect("#edit-entry", "mixed")
	b.waitText("the model form", "#edit-form", "Backend 1", "Backend 2")
	b.setSelect(b.control("#edit-form", "Strategy"), "least_latency")
	b.fill(b.control("#edit-form fieldset.backend:nth-of-type(2)", "Weight"), "3")
	b.fill("#edit-message", "prefer the fast one")
	b.do("review", chromedp.Click(chromedp.CSS("#review-button")))
	b.waitText("the model's dry run", "#review-changes", "models.mixed.strategy", "models.mixed.backends[1].weight")
	if n := eval[int](b, `document.querySelectorAll('#review-changes tbody tr').length`); n != 2 {
		t.Fatalf("the dry run lists %d changes for two edited fields:\n%s", n, eval[string](b, `document.querySelector('#review-changes').innerText`))
	}
	b.checkLabels("model form")
	b.shot("config-model-review")
	b.do("apply", chromedp.Click(chromedp.CSS("#apply")))
	b.waitText("the model change rolls out", "#apply-result", fmt.Sprintf("Version %d is rolled out", before+3))
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	m, err := env.cp.admin.GetModel(ctx, &berryv1.GetModelRequest{Id: "mixed"})
	if err != nil {
		t.Fatal(err)
	}
	if m.GetModel().GetStrategy() != "least_latency" || m.GetModel().GetBackends()[1].GetWeight() != 3 || m.GetModel().GetBackends()[0].GetPrice().GetInputPerMtok() != 2 {
		t.Fatalf("after the model form's write: %v", m.GetModel())
	}

	// A deletion is reviewed too.
	b.setSelect("#edit-entry", "pin")
	b.waitText("the pin model's form", "#edit-form", "Backend 1")
	b.fill("#edit-message", "pin is not used")
	b.do("review the deletion", chromedp.Click(chromedp.CSS("#delete-button")))
	b.waitText("the deletion's dry run", "#review-changes", "models.pin", "removed")
	b.do("delete", chromedp.Click(chromedp.CSS("#apply")))
	b.waitText("the deletion rolls out", "#apply-result", fmt.Sprintf("Version %d is rolled out", before+4))
	if _, err := env.cp.admin.GetModel(ctx, &berryv1.GetModelRequest{Id: "pin"}); status.Code(err) != codes.NotFound {
		t.Fatalf("model pin after its deletion: %v", err)
	}
	if st, err := chatWith(env.edges[1], userToken, "pin"); err != nil || st != http.StatusNotFound {
		t.Fatalf("a request for the deleted model: %d %v, want 404", st, err)
	}
}

// A read token sees the pages but cannot write: the write is refused with the
// reason, and nothing changes.
func TestConsoleReadTokenCannotWrite(t *testing.T) {
	chromiumPath(t) // skips before anything starts
	env := startConsoleEnv(t)
	b := startBrowser(t)
	b.login(env.url+"#/keys", readToken)
	b.waitText("the read role sees the keys", "#key-table", "alice")
	before := env.currentVersion(t)
	b.do("try to disable", chromedp.Click(chromedp.CSS(`tr[data-key="alice"] button[data-action="disable"]`)))
	b.waitText("refused", "#key-status", "Not allowed with this token")
	if got := env.currentVersion(t); got != before {
		t.Fatalf("a read token wrote version %d", got)
	}
	b.shot("keys-read-role")
}

// The console's JSON answers the pages rely on are what the admin API returns over
// Connect: a check on the transcoding the pages are written against, so that a
// failing browser test can be told from a changed API.
func TestConsoleAPIShapes(t *testing.T) {
	env := startConsoleEnv(t)
	post := func(method, token, body string) (int, map[string]any) {
		req, _ := http.NewRequest(http.MethodPost, strings.TrimSuffix(env.url, "/console/")+"/berry.v1.AdminService/"+method, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var m map[string]any
		if err := json.NewDecoder(resp.Body).Decode(&m); err != nil && !errors.Is(err, context.Canceled) {
			t.Fatalf("%s: answer is not JSON: %v", method, err)
		}
		return resp.StatusCode, m
	}
	st, m := post("FleetStatus", readToken, "{}")
	if st != http.StatusOK || m["currentVersion"] == nil || m["edges"] == nil {
		t.Fatalf("FleetStatus: %d %v", st, m)
	}
	st, m = post("FleetStatus", "wrong", "{}")
	if st != http.StatusUnauthorized || m["code"] != "unauthenticated" {
		t.Fatalf("FleetStatus with a wrong token: %d %v", st, m)
	}
}

// A control plane with no tokens (a local one: it serves loopback clients only)
// opens the console without a login.
func TestConsoleWithoutTokens(t *testing.T) {
	chromiumPath(t) // skips before anything starts
	httpAddr := freeAddr(t)
	cp := startControlPlane(t, t.TempDir(), "--http-listen", httpAddr)
	importConfig(t, cp, `
[providers.p]
name = "p"
base_url = "http://127.0.0.1:9/v1"
models = ["m"]

[models.m]
name = "m"
[[models.m.backends]]
provider = "p"
model = "m"
`)
	b := startBrowser(t)
	b.do("open the console", chromedp.Navigate("http://"+httpAddr+"/console/"))
	b.waitText("the fleet shows without a login", "#rollout", "Current version 1. No edge is connected.")
	b.waitText("the header says why", "#server", "no tokens (loopback only)")
	if eval[bool](b, `document.querySelector('#logout').checkVisibility()`) {
		t.Fatal("a log-out button shows where there is nothing to log out of")
	}
	b.shot("fleet-no-tokens")
}
