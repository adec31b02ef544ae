package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	berryv1 "github.com/berry-gateway/berry/pkg/api/berry/v1"
	"github.com/berry-gateway/berry/pkg/upstreamsim"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

// startControlPlaneAt runs a control plane on addr with the data file in dataDir.
func startControlPlaneAt(t *testing.T, name, dataDir, addr string, extra ...string) *controlPlane {
	t.Helper()
	args := append([]string{"--data", filepath.Join(dataDir, "berry.db"), "--grpc-listen", addr}, extra...)
	p := startProc(t, name, "berry-controlplane", args...)
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	cp := &controlPlane{proc: p, addr: addr, admin: berryv1.NewAdminServiceClient(conn)}
	eventually(t, name+" answers", func() error {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_, err := cp.admin.GetCurrentVersion(ctx, &berryv1.GetCurrentVersionRequest{})
		return err
	})
	return cp
}

func (p *proc) kill9() {
	_ = p.cmd.Process.Kill()
	<-p.done
}

// copyFile copies a stopped control plane's data file: copies share its lineage and
// versions, as the nodes of a cluster do.
func copyFile(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// edgeState is what the edge's /readyz says.
type edgeState struct {
	ConfigVersion uint64 `json:"config_version"`
	Connected     bool   `json:"control_plane_connected"`
	ControlPlane  string `json:"control_plane"`
}

func (e *edge) state() (edgeState, error) {
	resp, err := http.Get(e.url + "/readyz")
	if err != nil {
		return edgeState{}, err
	}
	defer resp.Body.Close()
	var s edgeState
	if err := json.NewDecoder(resp.Body).Decode(&s); err != nil {
		return edgeState{}, err
	}
	if resp.StatusCode != http.StatusOK {
		return s, fmt.Errorf("readyz %d", resp.StatusCode)
	}
	return s, nil
}

// metricsText reads the edge's /metrics (loopback needs no token).
func (e *edge) metricsText() (string, error) {
	resp, err := http.Get(e.url + "/metrics")
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}

// TestEdgeMovesBetweenControlPlanes runs three real control planes holding copies of
// one data file (the same lineage and versions, as the nodes of a cluster), one of
// them behind the others. An edge given the three addresses connects to an up-to-date
// one; when that one is killed it moves on, and when only the lagging one is left it
// keeps serving its newer version — the older snapshot is neither applied nor
// NACKed — until that node catches up. Client requests never fail and the version
// served never goes back.
func TestEdgeMovesBetweenControlPlanes(t *testing.T) {
	simA := startSim(t, upstreamsim.Options{Name: "sim-a", APIKey: "sk-sim-a-secret"})
	simB := startSim(t, upstreamsim.Options{Name: "sim-b", APIKey: "sk-sim-b-secret"})
	v1Doc := configTOML(simA.URL(), simB.URL(), "a")
	v2Doc := configTOML(simA.URL(), simB.URL(), "b")

	// Version 1 in one data file, copied to three nodes.
	seed := t.TempDir()
	boot := writeFile(t, filepath.Join(seed, "boot.toml"), v1Doc)
	first := startControlPlaneAt(t, "seed", seed, freeAddr(t), "--bootstrap", boot)
	first.stop(t)
	dirs := map[string]string{}
	for _, n := range []string{"a", "b", "c"} {
		dirs[n] = t.TempDir()
		copyFile(t, filepath.Join(seed, "berry.db"), filepath.Join(dirs[n], "berry.db"))
	}
	addrs := map[string]string{"a": freeAddr(t), "b": freeAddr(t), "c": freeAddr(t)}
	nodes := map[string]*controlPlane{}
	for _, n := range []string{"a", "b"} {
		nodes[n] = startControlPlaneAt(t, "controlplane "+n, dirs[n], addrs[n])
		if v := importConfig(t, nodes[n], v2Doc); v != 2 {
			t.Fatalf("node %s at version %d after the import, want 2", n, v)
		}
	}
	byAddr := map[string]string{addrs["a"]: "a", addrs["b"]: "b", addrs["c"]: "c"}

	// c is not up yet: the edge skips its address.
	e := startEdge(t, addrs["a"]+","+addrs["b"]+","+addrs["c"], "e1")
	var on string
	eventually(t, "edge serves 2 from a or b", func() error {
		s, err := e.state()
		if err != nil {
			return err
		}
		if s.ConfigVersion != 2 || !s.Connected || (s.ControlPlane != addrs["a"] && s.ControlPlane != addrs["b"]) {
			return fmt.Errorf("%+v", s)
		}
		on = byAddr[s.ControlPlane]
		return nil
	})
	eventually(t, "the metric names the address", func() error {
		m, err := e.metricsText()
		if err != nil {
			return err
		}
		if want := fmt.Sprintf(`berry_control_plane_connected{address=%q} 1`, addrs[on]); !strings.Contains(m, want) {
			return fmt.Errorf("no %s in /metrics", want)
		}
		return nil
	})
	// The lagging node starts, still at version 1.
	nodes["c"] = startControlPlaneAt(t, "controlplane c", dirs["c"], addrs["c"])

	// Clients keep sending, and the version the edge serves is watched, throughout.
	var sent, failed atomic.Int64
	var wentBack atomic.Uint64
	var failures sync.Map
	ctx, stopClients := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		body := `{"model":"chat","messages":[{"role":"user","content":"hi"}]}`
		for ctx.Err() == nil {
			req, _ := http.NewRequest(http.MethodPost, e.url+"/v1/chat/completions", strings.NewReader(body))
			req.Header.Set("Authorization", "Bearer "+userToken)
			req.Header.Set("Content-Type", "application/json")
			resp, err := http.DefaultClient.Do(req)
			sent.Add(1)
			switch {
			case err != nil:
				failed.Add(1)
				failures.Store(err.Error(), true)
			default:
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK || !strings.Contains(string(b), "up-b") {
					failed.Add(1)
					failures.Store(fmt.Sprintf("%d %.200s", resp.StatusCode, b), true)
				}
			}
			if v, err := e.configVersion(); err == nil && v != 2 {
				wentBack.Store(v)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}()

	// Kill -9 the node the edge is on: it moves to the other up-to-date one, perhaps
	// by way of the lagging one (which it leaves after --control-plane's lag wait).
	other := map[string]string{"a": "b", "b": "a"}[on]
	nodes[on].kill9()
	killed := time.Now()
	waitUntil(t, 60*time.Second, "edge on "+other, func() error {
		s, err := e.state()
		if err != nil {
			return err
		}
		if s.ControlPlane != addrs[other] || s.ConfigVersion != 2 {
			return fmt.Errorf("%+v", s)
		}
		return nil
	})

	moved := time.Since(killed)

	// Kill that one too: only the lagging node is left. The edge stays on version 2,
	// connected to it or moving between it and the dead addresses.
	nodes[other].kill9()
	waitUntil(t, 30*time.Second, "edge on the lagging node", func() error {
		s, err := e.state()
		if err != nil {
			return err
		}
		if s.ControlPlane != addrs["c"] {
			return fmt.Errorf("%+v", s)
		}
		return nil
	})
	// The lagging node catches up (the same import): the edge ACKs version 2 there.
	if v := importConfig(t, nodes["c"], v2Doc); v != 2 {
		t.Fatalf("node c at version %d after the import, want 2", v)
	}
	waitUntil(t, 30*time.Second, "node c sees the edge at version 2", func() error {
		fs, err := nodes["c"].admin.FleetStatus(context.Background(), &berryv1.FleetStatusRequest{})
		if err != nil {
			return err
		}
		for _, es := range fs.GetEdges() {
			if es.GetEdgeId() == "e1" && es.GetConnected() && es.GetAppliedVersion() == 2 && es.GetLastAckVersion() == 2 {
				if es.GetLastNack() != "" {
					return fmt.Errorf("NACK: %s", es.GetLastNack())
				}
				return nil
			}
		}
		return fmt.Errorf("edges: %v", fs.GetEdges())
	})
	stopClients()
	wg.Wait()

	if !strings.Contains(e.output(), "control plane is behind the version this edge serves") {
		t.Errorf("the edge never saw the lagging node's older snapshot:\n%s", e.output())
	}
	if strings.Contains(nodes["c"].output(), "snapshot NACK") {
		t.Errorf("the lagging node got a NACK:\n%s", nodes["c"].output())
	}
	if v := wentBack.Load(); v != 0 {
		t.Errorf("the edge served version %d after serving 2", v)
	}
	if n := failed.Load(); n != 0 || sent.Load() == 0 {
		var seen []string
		failures.Range(func(k, _ any) bool { seen = append(seen, k.(string)); return true })
		t.Errorf("%d of %d client requests failed: %v", n, sent.Load(), seen)
	}
	t.Logf("%d client requests, none failed, while the edge moved from %s to %s to c; on %s %v after %s was killed (a detour by c costs its 10 s lag wait)",
		sent.Load(), on, other, other, moved.Round(time.Millisecond), on)
}

// waitUntil polls f until it succeeds or d has passed.
func waitUntil(t *testing.T, d time.Duration, what string, f func() error) {
	t.Helper()
	deadline := time.Now().Add(d)
	var err error
	for time.Now().Before(deadline) {
		if err = f(); err == nil {
			return
		}
		time.Sleep(25 * time.Millisecond)
	}
	t.Fatalf("%s: still failing after %v: %v", what, d, err)
}

// TestEdgeRefusesAMalformedControlPlaneList: a bad --control-plane stops the edge at
// start with a line naming the flag and the entry.
func TestEdgeRefusesAMalformedControlPlaneList(t *testing.T) {
	tests := []struct{ value, want string }{
		{"127.0.0.1:9090,,127.0.0.1:9091", `--control-plane: address 2 of "127.0.0.1:9090,,127.0.0.1:9091" is empty`},
		{"127.0.0.1:9090,127.0.0.1", `--control-plane: address "127.0.0.1": want host:port`},
		{"127.0.0.1:9090,127.0.0.1:9090", `--control-plane: address "127.0.0.1:9090" is listed twice`},
	}
	for _, tc := range tests {
		_, errOut, code := runEdge(t, nil, "--listen", freeAddr(t), "--cache-dir", t.TempDir(), "--control-plane", tc.value)
		if code == 0 || !strings.Contains(errOut, tc.want) {
			t.Errorf("--control-plane %s: exit %d, want an error with %q:\n%s", tc.value, code, tc.want, errOut)
		}
	}
}
