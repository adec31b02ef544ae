package proxy

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/berry-gateway/berry/pkg/upstreamsim"
)

// startSim runs a simulator on loopback for the test.
func startSim(t testing.TB, name string, o upstreamsim.Options) *upstreamsim.Server {
	t.Helper()
	o.Name = name
	s := upstreamsim.New(o)
	if err := s.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// backendSpec is one backend of the test model "m".
type backendSpec struct {
	id       string // provider id
	url      string
	priority int
	weight   float64
	extra    string // extra provider TOML lines
	bextra   string // extra backend TOML lines
}

// configTOML builds a seed config: providers and one model "m" over them, with the
// given strategy and settings lines, and user "u" with token "t".
func configTOML(strategy, settings string, bs ...backendSpec) string {
	var b strings.Builder
	fmt.Fprintf(&b, "[settings]\n%s\n", settings)
	for _, x := range bs {
		fmt.Fprintf(&b, "[providers.%s]\nname = %q\nbase_url = %q\napi_key = \"k-%s\"\nmodels = [\"up-%s\", \"x\"]\n%s\n", x.id, x.id, x.url, x.id, x.id, x.extra)
	}
	fmt.Fprintf(&b, "[models.m]\nname = \"m\"\nstrategy = %q\n", strategy)
	for _, x := range bs {
		w := x.weight
		if w == 0 {
			w = 1
		}
		fmt.Fprintf(&b, "[[models.m.backends]]\nprovider = %q\nmodel = \"up-%s\"\nweight = %v\npriority = %d\n%s\n", x.id, x.id, w, x.priority, x.bextra)
	}
	b.WriteString("[users.u]\nname = \"u\"\ntoken = \"t\"\n")
	return b.String()
}

// edgeFor serves a handler over the config on loopback and returns its base URL.
func edgeFor(t testing.TB, doc string) (string, *Handler) {
	t.Helper()
	h := newHandler(runtimeFor(t, doc), Options{})
	return serveHandler(t, h), h
}

type result struct {
	status int
	header http.Header
	body   string
}

var testClient = &http.Client{Timeout: 30 * time.Second}

func post(t testing.TB, url, token, body string) result {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := testClient.Do(req)
	if err != nil {
		t.Fatalf("POST %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("reading %s: %v", url, err)
	}
	return result{resp.StatusCode, resp.Header, string(b)}
}

// openAIError decodes an OpenAI-style error body, failing the test on any other shape.
func openAIError(t testing.TB, body string) (msg, typ, code string) {
	t.Helper()
	var e struct {
		Error *struct {
			Message string  `json:"message"`
			Type    string  `json:"type"`
			Code    *string `json:"code"`
		} `json:"error"`
	}
	if err := json.Unmarshal([]byte(body), &e); err != nil || e.Error == nil || e.Error.Message == "" || e.Error.Type == "" {
		t.Fatalf("not an OpenAI-style error: %s", body)
	}
	if e.Error.Code != nil {
		code = *e.Error.Code
	}
	return e.Error.Message, e.Error.Type, code
}

// eventually polls cond until it holds or a generous deadline passes.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for: %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

const chatBody = `{"model":"m","messages":[{"role":"user","content":"hi"}]}`
const streamBody = `{"model":"m","stream":true,"messages":[{"role":"user","content":"hi"}]}`
