// Package e2e runs Berry's binaries as real processes on loopback and drives them the
// way operators and clients do.
package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	berryv1 "github.com/berry-gateway/berry/pkg/api/berry/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

var binDir string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "berry-e2e-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	args := []string{"build", "-o", dir + "/"}
	if raceEnabled {
		args = append(args, "-race")
	}
	args = append(args,
		"github.com/berry-gateway/berry/controlplane/cmd/berry-controlplane",
		"github.com/berry-gateway/berry/edge/cmd/berry-edge")
	cmd := exec.Command("go", args...)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building binaries:", err)
		os.Exit(1)
	}
	binDir = dir
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// proc is a running binary whose output is kept for the test log.
type proc struct {
	name string
	cmd  *exec.Cmd
	mu   sync.Mutex
	out  bytes.Buffer
	done chan struct{}
}

func (p *proc) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.out.Write(b)
}

func (p *proc) output() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.out.String()
}

// stop sends SIGTERM and waits for a clean exit.
func (p *proc) stop(t *testing.T) {
	t.Helper()
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(15 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
		t.Errorf("%s did not exit within 15s of SIGTERM", p.name)
	}
}

func startProc(t *testing.T, name, bin string, args ...string) *proc {
	t.Helper()
	p := &proc{name: name, done: make(chan struct{})}
	if (bin == "berry-edge" || bin == "berry-controlplane") && !slices.Contains(args, "--shutdown-delay") {
		// No load balancer watches these processes' health: waiting for one to
		// notice the drain would only slow every test's clean-up.
		args = append([]string{"--shutdown-delay", "0"}, args...)
	}
	if bin == "berry-controlplane" && !slices.Contains(args, "--http-listen") {
		// Tests run control planes side by side: the default metrics port is one.
		args = append([]string{"--http-listen", ""}, args...)
	}
	path := bin
	if !filepath.IsAbs(bin) {
		path = filepath.Join(binDir, bin) // one of Berry's, built by TestMain
	}
	p.cmd = exec.Command(path, args...)
	p.cmd.Stdout, p.cmd.Stderr = p, p
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	go func() { _ = p.cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			_ = p.cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-p.done:
			case <-time.After(10 * time.Second):
				_ = p.cmd.Process.Kill()
				<-p.done
			}
		}
		if t.Failed() {
			t.Logf("---- %s output ----\n%s", name, p.output())
		}
	})
	return p
}

// freeAddr returns a loopback address that was free a moment ago.
//
// The port is below Linux's ephemeral range (32768–60999), not one the kernel picks
// for :0: many tests stop a process and start it again on the same address, and while
// it is down its peers keep dialing it. A dial's own local port comes from the
// ephemeral range, so a dead port there can be taken by an outgoing connection, or
// by a dial to itself (TCP's simultaneous open), and the restarted process then
// cannot bind it.
func freeAddr(t *testing.T) string {
	t.Helper()
	for range 200 {
		port := 10000 + rand.IntN(22000)
		l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err != nil {
			continue // taken
		}
		addr := l.Addr().String()
		_ = l.Close()
		return addr
	}
	t.Fatal("no free port in 10000-31999 after 200 tries")
	return ""
}

type controlPlane struct {
	*proc
	addr  string
	admin berryv1.AdminServiceClient
}

func startControlPlane(t *testing.T, dataDir string, extra ...string) *controlPlane {
	t.Helper()
	addr := freeAddr(t)
	args := append([]string{"--data", filepath.Join(dataDir, "berry.db"), "--grpc-listen", addr}, extra...)
	p := startProc(t, "controlplane", "berry-controlplane", args...)
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	cp := &controlPlane{proc: p, addr: addr, admin: berryv1.NewAdminServiceClient(conn)}
	eventually(t, "control plane answers", func() error {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_, err := cp.admin.GetCurrentVersion(ctx, &berryv1.GetCurrentVersionRequest{})
		return err
	})
	return cp
}

type edge struct {
	*proc
	url string
}

func startEdge(t *testing.T, cpAddr, id string) *edge {
	t.Helper()
	addr := freeAddr(t)
	// Each edge gets its own snapshot file, so no test can see another's.
	p := startProc(t, "edge "+id, "berry-edge", "--listen", addr, "--control-plane", cpAddr, "--edge-id", id,
		"--cache-dir", t.TempDir())
	e := &edge{proc: p, url: "http://" + addr}
	eventually(t, "edge "+id+" listens", func() error {
		resp, err := http.Get(e.url + "/health")
		if err != nil {
			return err
		}
		resp.Body.Close()
		return nil
	})
	return e
}

// configVersion reads the version an edge serves from its /health.
func (e *edge) configVersion() (uint64, error) {
	resp, err := http.Get(e.url + "/health")
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	var h struct {
		ConfigVersion uint64 `json:"config_version"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&h); err != nil {
		return 0, err
	}
	return h.ConfigVersion, nil
}

func (e *edge) waitVersion(t *testing.T, v uint64) {
	t.Helper()
	eventually(t, fmt.Sprintf("%s serves version %d", e.name, v), func() error {
		got, err := e.configVersion()
		if err != nil {
			return err
		}
		if got != v {
			return fmt.Errorf("serves %d", got)
		}
		return nil
	})
}

// eventually polls f until it succeeds, failing the test after a bounded wait.
func eventually(t *testing.T, what string, f func() error) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	var err error
	for time.Now().Before(deadline) {
		if err = f(); err == nil {
			return
		}
		time.Sleep(25 * time.Millisecond)
	}
	t.Fatalf("%s: still failing after 20s: %v", what, err)
}

// chatResult is what a client saw of one chat completion.
type chatResult struct {
	status  int
	body    string // non-stream body, or the raw SSE stream
	content string // assistant text, joined across stream chunks
	done    bool   // a stream ended with data: [DONE]
	errType string
}

func chat(t *testing.T, url, token, body string) chatResult {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url+"/v1/chat/completions", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("POST %s: %v", url, err)
	}
	defer resp.Body.Close()
	return readChat(t, resp, nil)
}

// readChat reads a response; onFirst, if set, is called when the first stream event
// arrives.
func readChat(t *testing.T, resp *http.Response, onFirst func()) chatResult {
	t.Helper()
	r := chatResult{status: resp.StatusCode}
	if !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		b, _ := io.ReadAll(resp.Body)
		r.body = string(b)
		var v struct {
			Choices []struct {
				Message struct{ Content string } `json:"message"`
			} `json:"choices"`
			Error *struct {
				Type    string `json:"type"`
				Message string `json:"message"`
			} `json:"error"`
		}
		if err := json.Unmarshal(b, &v); err != nil {
			t.Errorf("response is not JSON: %q", b)
		}
		if len(v.Choices) > 0 {
			r.content = v.Choices[0].Message.Content
		}
		if v.Error != nil {
			r.errType = v.Error.Type
		}
		return r
	}
	var raw strings.Builder
	sc := bufio.NewScanner(resp.Body)
	first := true
	for sc.Scan() {
		line := sc.Text()
		raw.WriteString(line + "\n")
		data, ok := strings.CutPrefix(line, "data: ")
		if !ok {
			continue
		}
		if first && onFirst != nil {
			onFirst()
		}
		first = false
		if data == "[DONE]" {
			r.done = true
			continue
		}
		var ev struct {
			Choices []struct {
				Delta struct{ Content string } `json:"delta"`
			} `json:"choices"`
			Error *struct {
				Type string `json:"type"`
			} `json:"error"`
		}
		if err := json.Unmarshal([]byte(data), &ev); err != nil {
			t.Errorf("stream event is not JSON: %q", data)
			continue
		}
		if ev.Error != nil {
			r.errType = ev.Error.Type
		}
		for _, c := range ev.Choices {
			r.content += c.Delta.Content
		}
	}
	r.body = raw.String()
	return r
}
