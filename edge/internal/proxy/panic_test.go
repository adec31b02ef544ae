package proxy

import (
	"testing"

	"github.com/berry-gateway/berry/pkg/jsonscan"
	"github.com/berry-gateway/berry/pkg/provider"
	"github.com/valyala/fasthttp"
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
	tab := buildTable(t, configTOML("failover", "", backendSpec{id: "a", url: "http://127.0.0.1:1/v1"}))
	tab.Providers()[0].Adapter = panicky{}
	edge := serveHandler(t, New(staticTable{tab}, nil))
	for range 2 { // the edge is still up for the second request
		r := post(t, edge+"/v1/chat/completions", "t", chatBody)
		if r.status != 500 {
			t.Fatalf("%d %s", r.status, r.body)
		}
		openAIError(t, r.body)
	}
}
