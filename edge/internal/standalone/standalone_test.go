package standalone

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/berry-gateway/berry/edge/internal/serving"
)

const good = `
[providers.p]
name = "P"
base_url = "https://p.example/v1"
models = ["up"]
[models.m]
name = "%s"
[[models.m.backends]]
provider = "p"
model = "up"
[users.u]
token = "tok"
`

type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func write(t *testing.T, path, doc string) {
	t.Helper()
	// Replace by rename, like editors and ConfigMap updates do.
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

func modelDoc(name string) string { return strings.Replace(good, "%s", name, 1) }

func TestWatcher(t *testing.T) {
	path := filepath.Join(t.TempDir(), "berry.toml")
	var cur serving.Runtime
	logs := &syncBuf{}
	w := &Watcher{Path: path, Runtime: &cur, Interval: 5 * time.Millisecond,
		Log: slog.New(slog.NewTextHandler(logs, nil))}

	if err := w.Load(); err == nil {
		t.Fatal("Load of a missing file succeeded")
	}
	write(t, path, "[models.x]\nname = 1\n")
	if err := w.Load(); err == nil {
		t.Fatal("Load of an invalid file succeeded")
	}
	write(t, path, modelDoc("first"))
	if err := w.Load(); err != nil {
		t.Fatal(err)
	}
	if cur.Table().ModelByName("first") == nil || lineage(&cur) != Lineage {
		t.Fatal("first config not served")
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()

	wait := func(what string, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for !cond() {
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s; logs:\n%s", what, logs.String())
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	steps := []struct {
		name    string
		doc     string
		serving string // model name served afterwards
		logged  string
	}{
		{"valid edit reloads", modelDoc("second"), "second", "config loaded"},
		{"syntax error ignored", "[models.m\n", "second", "config file change ignored"},
		{"invalid value ignored", strings.Replace(modelDoc("third"), `provider = "p"`, `provider = "ghost"`, 1), "second", `unknown provider \"ghost\"`},
		{"fixed file reloads", modelDoc("fourth"), "fourth", "config loaded"},
	}
	for _, st := range steps {
		before := version(&cur)
		n := strings.Count(logs.String(), st.logged)
		write(t, path, st.doc)
		wait(st.name, func() bool { return strings.Count(logs.String(), st.logged) > n })
		if cur.Table().ModelByName(st.serving) == nil {
			t.Fatalf("%s: model %q not served", st.name, st.serving)
		}
		if st.serving != "second" && version(&cur) != before+1 {
			t.Fatalf("%s: version %d, want %d", st.name, version(&cur), before+1)
		}
	}
	cancel()
	<-done
	if strings.Contains(logs.String(), "tok\"") {
		t.Fatal("logs show a user token")
	}
}

func version(rt *serving.Runtime) uint64 { v, _ := rt.Applied(); return v }

func lineage(rt *serving.Runtime) string { _, l := rt.Applied(); return l }
