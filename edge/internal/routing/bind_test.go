package routing

import (
	"testing"
	"time"

	"github.com/berry-gateway/berry/edge/internal/backends"
	"github.com/berry-gateway/berry/edge/internal/quota"
	berryv1 "github.com/berry-gateway/berry/pkg/api/berry/v1"
	"github.com/berry-gateway/berry/pkg/config"
)

func buildDoc(t *testing.T, version uint64, doc string, reg Registries) *Table {
	t.Helper()
	cfg, _, err := config.ParseTOML([]byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	tab, err := Build(&berryv1.Snapshot{Version: version, Config: cfg}, reg)
	if err != nil {
		t.Fatal(err)
	}
	return tab
}

const bindDoc = `
[providers.p1]
name = "p1"
base_url = "http://127.0.0.1:1/v1"
models = ["a", "b"]
[providers.p2]
name = "p2"
base_url = "http://127.0.0.1:2/v1"
models = ["a"]
[models.m]
name = "m"
[[models.m.backends]]
provider = "p1"
model = "a"
tags = ["premium"]
[[models.m.backends]]
provider = "p2"
model = "a"
[users.u]
name = "u"
token = "t"
tags = ["basic"]
rate_limit = { requests_per_minute = 1 }
[users.v]
name = "v"
token = "tv"
tags = ["premium", "x"]
[users.w]
name = "w"
token = "tw"
`

func TestBindKeepsStateAcrossVersions(t *testing.T) {
	reg := Registries{Backends: &backends.Registry{}}
	t1 := buildDoc(t, 1, bindDoc, reg)
	now := time.Unix(1000, 0)
	for range 5 {
		br := &t1.ModelByName("m").Backends[0].State.Breaker
		tk, _ := br.Acquire(now)
		br.Failure(tk, now)
	}
	// Version 2 drops p2's backend and adds p1/b; p1/a keeps its open breaker. (A key's
	// used quota is the runtime's quota.Ledger's, by key id, across versions.)
	doc2 := bindDoc[:len(bindDoc)] + `
[[models.m.backends]]
provider = "p1"
model = "b"
`
	t2 := buildDoc(t, 2, doc2, reg)
	b0 := t2.ModelByName("m").Backends[0]
	if b0.State != t1.ModelByName("m").Backends[0].State || b0.State.Available(now) {
		t.Fatal("p1/a lost its state (open breaker) across versions")
	}
	if u := t2.UserByToken([]byte("t")); !u.HasQuota || u.Quota[quota.RequestsMinute] != 1 {
		t.Fatalf("the key's limits: %v", u.Quota)
	}
	if t2.UserByToken([]byte("tw")).HasQuota {
		t.Fatal("an unlimited key has limits")
	}
	if t2.ModelByName("m").Stats == nil {
		t.Fatal("model stats not bound")
	}
}

func TestSeesBackend(t *testing.T) {
	tab := buildDoc(t, 1, bindDoc, Registries{Backends: &backends.Registry{}})
	m := tab.ModelByName("m")
	tagged, untagged := m.Backends[0], m.Backends[1]
	tests := []struct {
		token        string
		tagged, free bool
	}{
		{"t", false, true}, // tags with nothing in common: only untagged backends
		{"tv", true, true}, // a shared tag
		{"tw", true, true}, // no tags: everything
	}
	for _, tc := range tests {
		u := tab.UserByToken([]byte(tc.token))
		if got := u.SeesBackend(tagged); got != tc.tagged {
			t.Errorf("%s sees the tagged backend: %v, want %v", tc.token, got, tc.tagged)
		}
		if got := u.SeesBackend(untagged); got != tc.free {
			t.Errorf("%s sees the untagged backend: %v, want %v", tc.token, got, tc.free)
		}
	}
}
