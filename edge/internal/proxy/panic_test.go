package proxy

import (
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/berry-gateway/berry/pkg/jsonscan"
	"github.com/berry-gateway/berry/pkg/provider"
)

// panicky is an adapter whose requests blow up, standing in for any bug on the
// request path.
type panicky struct{}

func (panicky) Prepare(a *provider.Account) error { return nil }
func (panicky) Supports(provider.Op) bool         { return true }
func (panicky) WriteRequest(*fasthttp.Request, *provider.Account, provider.Op, string, []byte, *jsonscan.Fields) error {
	panic("adapter bug")
}
func (panicky) TranslateResponse(_ provider.Op, _ int, _, dst []byte) ([]byte, bool, error) {
	return dst, false, nil
}
func (panicky) NewStream(provider.Op, string) provider.StreamTranslator { return nil }

func TestPanicIsContained(t *testing.T) {
	rt := runtimeFor(t, configTOML("failover", "circuit_breaker_failure_threshold = 1",
		backendSpec{id: "a", url: "http://127.0.0.1:1/v1"}))
	tab := rt.Table()
	tab.Providers()[0].Adapter = panicky{}
	h := newHandler(rt, Options{})
	// Opened long ago: the next request is the half-open trial. A panic must give the
	// trial back, or every later request would find the backend unavailable (503).
	tab.ModelByName("m").Backends[0].State.Breaker.Trip(time.Now().Add(-time.Hour))
	edge := serveHandler(t, h)
	for range 2 { // the edge is still up for the second request
		r := post(t, edge+"/v1/chat/completions", "t", chatBody)
		if r.status != 500 {
			t.Fatalf("%d %s", r.status, r.body)
		}
		openAIError(t, r.body)
	}
}
