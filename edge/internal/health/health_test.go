package health

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/berry-gateway/berry/edge/internal/serving"
	berryv1 "github.com/berry-gateway/berry/pkg/api/berry/v1"
	"github.com/berry-gateway/berry/pkg/config"
	"github.com/berry-gateway/berry/pkg/upstreamsim"
)

// runtime serves doc as the edge would.
func runtime(t *testing.T, doc string) *serving.Runtime {
	t.Helper()
	cfg, _, err := config.ParseTOML([]byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	var rt serving.Runtime
	if err := rt.Apply(&berryv1.Snapshot{Version: 1, Config: cfg}); err != nil {
		t.Fatal(err)
	}
	return &rt
}

func TestProbeScheduleAndRecovery(t *testing.T) {
	// The simulator demands the provider's key: a probe without real auth would fail.
	probed := upstreamsim.New(upstreamsim.Options{Name: "probed", APIKey: "k-probed"})
	perReq := upstreamsim.New(upstreamsim.Options{Name: "perreq", APIKey: "k-perreq", FailStatus: 500})
	for _, s := range []*upstreamsim.Server{probed, perReq} {
		if err := s.Start("127.0.0.1:0"); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = s.Close() })
	}
	rt := runtime(t, fmt.Sprintf(`
[settings]
health_check_interval_seconds = 10
recovery_check_interval_seconds = 30
[providers.probed]
name = "probed"
base_url = %q
api_key = "k-probed"
models = ["m"]
headers = { "X-Custom" = "yes" }
[providers.perreq]
name = "perreq"
base_url = %q
api_key = "k-perreq"
models = ["m"]
[models.m]
name = "m"
[[models.m.backends]]
provider = "probed"
model = "m"
[[models.m.backends]]
provider = "perreq"
model = "m"
billing_mode = "per_request"
[users.u]
name = "u"
token = "t"
`, probed.URL(), perReq.URL()))
	tab := rt.Table()
	c := &Checker{Runtime: rt}
	ctx := context.Background()
	t0 := time.Unix(1_000_000, 0)
	pb, pr := tab.ModelByName("m").Backends[0], tab.ModelByName("m").Backends[1]
	now := time.Now()

	steps := []struct {
		at          time.Duration
		fail        bool // set the probed sim failing before this step
		wantProbes  int64
		wantHealthy bool
	}{
		{0, false, 1, true},                 // first round probes at once
		{5 * time.Second, false, 1, true},   // not due yet
		{10 * time.Second, true, 2, false},  // due: fails, leaves rotation
		{20 * time.Second, false, 2, false}, // recovered upstream, but re-probes wait 30s
		{40 * time.Second, false, 3, true},  // recovery probe passes: rejoins
	}
	for i, s := range steps {
		o := probed.Options()
		o.FailStatus = 0
		if s.fail {
			o.FailStatus = 503
		}
		probed.SetOptions(o)
		c.RunOnce(ctx, t0.Add(s.at))
		if got := probed.Stats().Requests; got != s.wantProbes {
			t.Fatalf("step %d: %d probes, want %d", i, got, s.wantProbes)
		}
		if got := pb.State.Available(now); got != s.wantHealthy {
			t.Fatalf("step %d: probed backend available = %v, want %v (probe error %q)", i, got, s.wantHealthy, pb.State.ProbeError())
		}
		if perReq.Stats().Requests != 0 {
			t.Fatal("a per_request backend was probed")
		}
		if !pr.State.Available(now) {
			t.Fatal("a per_request backend was marked down by probes")
		}
	}
	if e := pb.State.ProbeError(); e != "" {
		t.Fatalf("probe error kept after recovery: %q", e)
	}
}

func TestProbeSendsAuthAndCustomHeaders(t *testing.T) {
	got := make(chan http.Header, 1)
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet && r.URL.Path == "/v1/models" {
			select {
			case got <- r.Header.Clone():
			default:
			}
		}
		_, _ = w.Write([]byte(`{"object":"list","data":[]}`))
	})}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(func() { _ = srv.Close() })
	rt := runtime(t, fmt.Sprintf(`
[providers.p]
name = "p"
base_url = "http://%s/v1"
api_key = "sk-probe"
models = ["m"]
headers = { "X-Org" = "acme" }
[models.m]
name = "m"
[[models.m.backends]]
provider = "p"
model = "m"
[users.u]
name = "u"
token = "t"
`, lis.Addr()))
	c := &Checker{Runtime: rt}
	c.RunOnce(context.Background(), time.Now())
	select {
	case h := <-got:
		if h.Get("Authorization") != "Bearer sk-probe" || h.Get("X-Org") != "acme" {
			t.Fatalf("probe headers %v", h)
		}
	default:
		t.Fatal("no probe reached the models endpoint")
	}
}

func TestModelDiscovery(t *testing.T) {
	sim := upstreamsim.New(upstreamsim.Options{Name: "p", APIKey: "k", Models: []string{"m1", "m2"}})
	if err := sim.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sim.Close() })
	rt := runtime(t, fmt.Sprintf(`
[settings]
health_check_interval_seconds = 10
recovery_check_interval_seconds = 10
[providers.p]
name = "p"
base_url = %q
api_key = "k"
models = ["m1", "m2", "alias"]
[models.a]
name = "a"
[[models.a.backends]]
provider = "p"
model = "m1"
[models.b]
name = "b"
[[models.b.backends]]
provider = "p"
model = "m2"
[models.c]
name = "c"
[[models.c.backends]]
provider = "p"
model = "alias"
[users.u]
name = "u"
token = "t"
`, sim.URL()))
	tab := rt.Table()
	c := &Checker{Runtime: rt}
	m1, m2, alias := tab.ModelByName("a").Backends[0], tab.ModelByName("b").Backends[0], tab.ModelByName("c").Backends[0]
	t0 := time.Unix(1_000_000, 0)
	now := time.Now()
	steps := []struct {
		listed          []string
		wantM1, wantM2  bool
		wantListedAlias bool
	}{
		// alias is never listed: that proves nothing (services accept unlisted aliases).
		{[]string{"m1", "m2"}, true, true, false},
		{[]string{"m1"}, true, false, false},         // m2 vanished
		{[]string{"m1", "m2"}, true, true, false},    // m2 back: rejoins
		{[]string{"m2", "alias"}, false, true, true}, // m1 vanished, alias now seen
		{[]string{"m2"}, false, true, true},          // and alias vanished too
	}
	for i, s := range steps {
		o := sim.Options()
		o.Models = s.listed
		sim.SetOptions(o)
		c.RunOnce(context.Background(), t0.Add(time.Duration(i)*10*time.Second))
		if got := m1.State.Available(now); got != s.wantM1 {
			t.Fatalf("step %d: m1 available = %v, want %v (%q)", i, got, s.wantM1, m1.State.ProbeError())
		}
		if got := m2.State.Available(now); got != s.wantM2 {
			t.Fatalf("step %d: m2 available = %v, want %v (%q)", i, got, s.wantM2, m2.State.ProbeError())
		}
		if got := c.Listed("p", "alias"); got != s.wantListedAlias {
			t.Fatalf("step %d: alias listed = %v, want %v", i, got, s.wantListedAlias)
		}
		wantAlias := !(i == 4)
		if got := alias.State.Available(now); got != wantAlias {
			t.Fatalf("step %d: alias available = %v, want %v", i, got, wantAlias)
		}
	}
	if e := m1.State.ProbeError(); e != `model "m1" is no longer listed by provider "p"` {
		t.Fatalf("m1 reason %q", e)
	}
}

func TestModelDiscoveryIgnoresIncompleteLists(t *testing.T) {
	// An Anthropic-style page with has_more says nothing about models not on it.
	body := make(chan string, 1)
	body <- `{"data":[{"type":"model","id":"m"}],"has_more":false}`
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b := <-body
		body <- b
		_, _ = w.Write([]byte(b))
	})}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(func() { _ = srv.Close() })
	rt := runtime(t, fmt.Sprintf(`
[settings]
health_check_interval_seconds = 10
[providers.p]
name = "p"
base_url = "http://%s/v1"
api_key = "k"
models = ["m"]
[models.m]
name = "m"
[[models.m.backends]]
provider = "p"
model = "m"
[users.u]
name = "u"
token = "t"
`, lis.Addr()))
	c := &Checker{Runtime: rt}
	b := rt.Table().ModelByName("m").Backends[0]
	t0 := time.Unix(1_000_000, 0)
	for i, tc := range []struct {
		body string
		want bool
	}{
		{`{"data":[{"type":"model","id":"m"}],"has_more":false}`, true},
		{`{"data":[{"type":"model","id":"x"}],"has_more":true}`, true}, // incomplete page
		{`not a list`, true}, // healthy, no list
		{`{"data":[{"type":"model","id":"x"}],"has_more":false}`, false},
	} {
		<-body
		body <- tc.body
		c.RunOnce(context.Background(), t0.Add(time.Duration(i)*10*time.Second))
		if got := b.State.Available(time.Now()); got != tc.want {
			t.Fatalf("step %d: available = %v, want %v (%q)", i, got, tc.want, b.State.ProbeError())
		}
	}
}
