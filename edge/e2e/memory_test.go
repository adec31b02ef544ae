package e2e

import (
	"bufio"
	"bytes"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/berry-gateway/berry/pkg/upstreamsim"
)

var (
	memStreams = flag.Int("edge-memory-streams", 0, "TestEdgeMemory: concurrent 2-second streams (0 skips the test)")
	memIdle    = flag.Int("edge-memory-idle", 10_000, "TestEdgeMemory: idle keep-alive client connections")
)

// TestEdgeMemory measures a real berry-edge's resident memory under N concurrent
// 2-second streams and with many idle keep-alive client connections; it reports the
// figures and checks nothing (memory targets are measured, not asserted). Run it
// without -race, which multiplies memory use:
//
//	go test ./edge/e2e -run TestEdgeMemory -v -args -edge-memory-streams 1000 -edge-memory-idle 10000
func TestEdgeMemory(t *testing.T) {
	if *memStreams == 0 {
		t.Skip("measurement run: go test ./edge/e2e -run TestEdgeMemory -v -args -edge-memory-streams 1000")
	}
	if raceEnabled {
		t.Skip("the race detector multiplies memory use: run without -race")
	}
	sim := startSim(t, upstreamsim.Options{Chunks: 20, ChunkDelay: 100 * time.Millisecond})
	cfg := filepath.Join(t.TempDir(), "config.toml")
	if err := os.WriteFile(cfg, []byte(configTOML(sim.URL(), sim.URL(), "a")), 0o600); err != nil {
		t.Fatal(err)
	}
	addr := freeAddr(t)
	p := startProc(t, "edge", "berry-edge", "--listen", addr, "--config", cfg, "--log-level", "error")
	e := &edge{proc: p, url: "http://" + addr}
	eventually(t, "edge listens", func() error {
		_, err := e.configVersion()
		return err
	})
	pid := p.cmd.Process.Pid
	idle := rss(t, pid, "VmRSS")
	t.Logf("edge at rest: RSS %.1f MB", mb(idle))

	body := `{"model":"chat","stream":true,"messages":[{"role":"user","content":"hi"}]}`
	req := fmt.Sprintf("POST /v1/chat/completions HTTP/1.1\r\nHost: edge\r\nAuthorization: Bearer %s\r\n"+
		"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n%s", userToken, len(body), body)
	var wg sync.WaitGroup
	var mu sync.Mutex
	failed := 0
	start := time.Now()
	for range *memStreams {
		wg.Go(func() {
			ok := func() bool {
				c, err := net.DialTimeout("tcp", addr, 10*time.Second)
				if err != nil {
					return false
				}
				defer c.Close()
				_ = c.SetDeadline(time.Now().Add(60 * time.Second))
				if _, err := io.WriteString(c, req); err != nil {
					return false
				}
				b, _ := io.ReadAll(io.LimitReader(readUntil(c, "[DONE]"), 1<<20))
				return bytes.Contains(b, []byte("[DONE]"))
			}()
			if !ok {
				mu.Lock()
				failed++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	peak := rss(t, pid, "VmHWM")
	t.Logf("%d concurrent 2-second streams in %v (%d failed): peak RSS %.1f MB", *memStreams,
		time.Since(start).Round(time.Millisecond), failed, mb(peak))

	before := rss(t, pid, "VmRSS")
	conns := make([]net.Conn, 0, *memIdle)
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for range *memIdle {
		c, err := net.DialTimeout("tcp", addr, 10*time.Second)
		if err != nil {
			t.Logf("connection %d: %v", len(conns), err)
			break
		}
		conns = append(conns, c)
		if _, err := io.WriteString(c, "GET /healthz HTTP/1.1\r\nHost: edge\r\n\r\n"); err != nil {
			t.Fatal(err)
		}
		r := bufio.NewReader(c)
		if _, err := readResponse(r); err != nil {
			t.Fatalf("connection %d: %v", len(conns), err)
		}
	}
	time.Sleep(2 * time.Second) // idle now
	after := rss(t, pid, "VmRSS")
	t.Logf("%d idle keep-alive connections: RSS %.1f MB (%.1f MB more, %.1f KB each); peak RSS so far %.1f MB",
		len(conns), mb(after), mb(after-before), float64(after-before)/1024/float64(max(len(conns), 1)), mb(rss(t, pid, "VmHWM")))
}

// rss reads a memory figure of a process from /proc, in bytes.
func rss(t *testing.T, pid int, field string) int64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return kb * 1024
		}
	}
	t.Fatalf("no %s in /proc/%d/status", field, pid)
	return 0
}

func mb(b int64) float64 { return float64(b) / (1 << 20) }

// readUntil reads r until marker has been seen, then stops.
func readUntil(r io.Reader, marker string) io.Reader {
	pr, pw := io.Pipe()
	go func() {
		buf := make([]byte, 4096)
		var tail []byte
		for {
			n, err := r.Read(buf)
			_, _ = pw.Write(buf[:n])
			tail = append(tail, buf[:n]...)
			if len(tail) > 64 {
				tail = tail[len(tail)-64:]
			}
			if bytes.Contains(tail, []byte(marker)) || err != nil {
				pw.Close()
				return
			}
		}
	}()
	return pr
}

// readResponse reads one HTTP/1.1 response with a Content-Length body.
func readResponse(r *bufio.Reader) (string, error) {
	n := -1
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return "", err
		}
		line = strings.TrimSpace(line)
		if line == "" {
			break
		}
		if v, ok := strings.CutPrefix(strings.ToLower(line), "content-length:"); ok {
			n, _ = strconv.Atoi(strings.TrimSpace(v))
		}
	}
	if n < 0 {
		return "", fmt.Errorf("no Content-Length")
	}
	b := make([]byte, n)
	_, err := io.ReadFull(r, b)
	return string(b), err
}
