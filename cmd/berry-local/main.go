// Command berry-local starts a complete local Berry deployment from a source checkout:
// two simulated upstreams, a control plane bootstrapped from an example config, and one
// or more edges, each as its own process, until Ctrl-C. It is the README's "run"
// command: no real provider key is needed.
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "berry-local:", err)
		os.Exit(1)
	}
}

func run() error {
	dir := flag.String("dir", ".berry-local", "where binaries, the bbolt file and logs go")
	config := flag.String("config", "docs/examples/local.toml", "seed TOML the control plane bootstraps from")
	edges := flag.Int("edges", 1, "number of edges (ports 3000, 3001, …)")
	edgePort := flag.Int("edge-port", 3000, "first edge's port")
	cpAddr := flag.String("control-plane", "127.0.0.1:9090", "control plane gRPC address")
	flag.Parse()

	root, err := moduleRoot()
	if err != nil {
		return err
	}
	if err := os.Chdir(root); err != nil {
		return err
	}
	bin := filepath.Join(*dir, "bin")
	if err := os.MkdirAll(bin, 0o755); err != nil {
		return err
	}
	fmt.Println("building binaries into", bin)
	build := exec.Command("go", "build", "-o", bin+"/",
		"./controlplane/cmd/berry-controlplane", "./edge/cmd/berry-edge", "./cmd/berry-sim")
	build.Stdout, build.Stderr = os.Stdout, os.Stderr
	if err := build.Run(); err != nil {
		return fmt.Errorf("go build: %w", err)
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var procs []*exec.Cmd
	defer func() {
		for i := len(procs) - 1; i >= 0; i-- {
			_ = procs[i].Process.Signal(syscall.SIGTERM)
		}
		for _, p := range procs {
			_ = p.Wait()
		}
	}()
	var out sync.Mutex
	startProc := func(name string, args ...string) error {
		cmd := exec.Command(filepath.Join(bin, args[0]), args[1:]...)
		stdout, _ := cmd.StdoutPipe()
		cmd.Stderr = cmd.Stdout
		if err := cmd.Start(); err != nil {
			return fmt.Errorf("start %s: %w", name, err)
		}
		procs = append(procs, cmd)
		go prefix(&out, name, stdout)
		return nil
	}

	if err := startProc("sim-a", "berry-sim", "--listen", "127.0.0.1:8081", "--name", "sim-a",
		"--api-key", "sim-key", "--models", "sim-large,sim-small", "--chunk-delay", "50ms"); err != nil {
		return err
	}
	if err := startProc("sim-b", "berry-sim", "--listen", "127.0.0.1:8082", "--name", "sim-b",
		"--api-key", "sim-key", "--models", "sim-large", "--chunk-delay", "50ms"); err != nil {
		return err
	}
	if err := startProc("controlplane", "berry-controlplane", "--data", filepath.Join(*dir, "berry.db"),
		"--grpc-listen", *cpAddr, "--bootstrap", *config); err != nil {
		return err
	}
	var urls []string
	for i := range *edges {
		addr := "127.0.0.1:" + strconv.Itoa(*edgePort+i)
		if err := startProc("edge-"+strconv.Itoa(i+1), "berry-edge", "--listen", addr,
			"--control-plane", *cpAddr, "--edge-id", "local-edge-"+strconv.Itoa(i+1)); err != nil {
			return err
		}
		urls = append(urls, "http://"+addr)
	}
	for _, u := range urls {
		if err := waitHealthy(ctx, u+"/health"); err != nil {
			return err
		}
	}
	out.Lock()
	fmt.Printf(`
Berry is up: %s
Try:
  curl -s %s/v1/chat/completions -H 'Authorization: Bearer berry-demo-key' \
    -H 'Content-Type: application/json' -d '{"model":"demo","messages":[{"role":"user","content":"hi"}]}'
  curl -sN %s/v1/chat/completions -H 'Authorization: Bearer berry-demo-key' \
    -H 'Content-Type: application/json' -d '{"model":"demo","stream":true,"messages":[{"role":"user","content":"hi"}]}'
Ctrl-C stops everything.

`, strings.Join(urls, " "), urls[0], urls[0])
	out.Unlock()
	<-ctx.Done()
	fmt.Println("\nstopping")
	return nil
}

func moduleRoot() (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	mod := strings.TrimSpace(string(out))
	if mod == "" || mod == os.DevNull {
		return "", errors.New("run berry-local from inside the Berry source tree")
	}
	return filepath.Dir(mod), nil
}

func prefix(mu *sync.Mutex, name string, r io.Reader) {
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		mu.Lock()
		fmt.Printf("%-13s| %s\n", name, sc.Text())
		mu.Unlock()
	}
}

func waitHealthy(ctx context.Context, url string) error {
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		resp, err := http.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
	return fmt.Errorf("%s did not become healthy within 30s", url)
}
