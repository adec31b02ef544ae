// Command berry-local starts a complete local Berry deployment from a source checkout:
// two simulated upstreams, a control plane bootstrapped from an example config, and one
// or more edges, each as its own process, until Ctrl-C. It is the README's "run"
// command: no real provider key is needed. When any of them fails to start or dies,
// it stops the others and exits non-zero.
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

// child is a process berry-local started.
type child struct {
	name string
	cmd  *exec.Cmd
	done chan struct{} // closed when it has exited
	err  error         // why, once done is closed
}

func run() error {
	dir := flag.String("dir", ".berry-local", "where binaries, the bbolt file, the edges' snapshot files and logs go")
	config := flag.String("config", "docs/examples/local.toml", "seed TOML the control plane bootstraps from (only while its store is empty)")
	edges := flag.Int("edges", 1, "number of edges (ports 3000, 3001, …)")
	edgePort := flag.Int("edge-port", 3000, "first edge's port")
	cpAddr := flag.String("control-plane", "127.0.0.1:9090", "control plane gRPC address")
	cpHTTP := flag.String("control-plane-http", "127.0.0.1:9091", "control plane HTTP address (/metrics); empty disables it")
	simA := flag.Int("sim-a-port", 8081, "first simulated upstream's port")
	simB := flag.Int("sim-b-port", 8082, "second simulated upstream's port")
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
	build := exec.Command("bash", "scripts/build.sh", bin)
	build.Stdout, build.Stderr = os.Stdout, os.Stderr
	if err := build.Run(); err != nil {
		return fmt.Errorf("scripts/build.sh: %w", err)
	}
	// The simulators' ports are flags: the seed config is rewritten to name them.
	seed, err := os.ReadFile(*config)
	if err != nil {
		return fmt.Errorf("--config: %w", err)
	}
	seed = []byte(strings.NewReplacer("127.0.0.1:8081", "127.0.0.1:"+strconv.Itoa(*simA),
		"127.0.0.1:8082", "127.0.0.1:"+strconv.Itoa(*simB)).Replace(string(seed)))
	seedPath := filepath.Join(*dir, "bootstrap.toml")
	if err := os.WriteFile(seedPath, seed, 0o600); err != nil {
		return err
	}
	if _, err := os.Stat(filepath.Join(*dir, "berry.db")); err == nil {
		fmt.Printf("%s/berry.db exists: the control plane serves its stored config, not %s "+
			"(change it with berryctl, or delete %s to start over)\n", *dir, *config, *dir)
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var children []*child
	exited := make(chan *child, 3+*edges) // every child can report without a reader
	defer func() {
		for i := len(children) - 1; i >= 0; i-- {
			_ = children[i].cmd.Process.Signal(syscall.SIGTERM)
		}
		for _, c := range children {
			select {
			case <-c.done:
			case <-time.After(15 * time.Second):
				_ = c.cmd.Process.Kill()
				<-c.done
			}
		}
	}()
	var out sync.Mutex
	start := func(name string, args ...string) error {
		cmd := exec.Command(filepath.Join(bin, args[0]), args[1:]...)
		stdout, _ := cmd.StdoutPipe()
		cmd.Stderr = cmd.Stdout
		if err := cmd.Start(); err != nil {
			return fmt.Errorf("start %s: %w", name, err)
		}
		c := &child{name: name, cmd: cmd, done: make(chan struct{})}
		children = append(children, c)
		printed := make(chan struct{})
		go func() { prefix(&out, name, stdout); close(printed) }()
		go func() {
			<-printed // its last words first
			c.err = cmd.Wait()
			close(c.done)
			exited <- c
		}()
		return nil
	}
	// Processes here drain for nobody: no load balancer watches them.
	quick := []string{"--shutdown-delay", "0"}

	if err := start("sim-a", "berry-sim", "--listen", "127.0.0.1:"+strconv.Itoa(*simA), "--name", "sim-a",
		"--api-key", "sim-key", "--models", "sim-large,sim-small", "--chunk-delay", "50ms"); err != nil {
		return err
	}
	if err := start("sim-b", "berry-sim", "--listen", "127.0.0.1:"+strconv.Itoa(*simB), "--name", "sim-b",
		"--api-key", "sim-key", "--models", "sim-large", "--chunk-delay", "50ms"); err != nil {
		return err
	}
	if err := start("controlplane", append([]string{"berry-controlplane", "--data", filepath.Join(*dir, "berry.db"),
		"--grpc-listen", *cpAddr, "--http-listen", *cpHTTP, "--bootstrap", seedPath}, quick...)...); err != nil {
		return err
	}
	var urls []string
	for i := range *edges {
		addr := "127.0.0.1:" + strconv.Itoa(*edgePort+i)
		// Snapshot files stay in this deployment's directory: another deployment's
		// edge must never start serving this one's config and keys, nor this one
		// another's.
		if err := start("edge-"+strconv.Itoa(i+1), append([]string{"berry-edge", "--listen", addr,
			"--control-plane", *cpAddr, "--edge-id", "local-edge-" + strconv.Itoa(i+1),
			"--cache-dir", filepath.Join(*dir, "edges")}, quick...)...); err != nil {
			return err
		}
		urls = append(urls, "http://"+addr)
	}
	for _, u := range urls {
		if err := waitHealthy(ctx, u+"/health", exited); err != nil {
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
	select {
	case <-ctx.Done():
		fmt.Println("\nstopping")
		return nil
	case c := <-exited:
		return fmt.Errorf("%s exited (%v); stopping everything", c.name, c.err)
	}
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

// waitHealthy waits for url to answer 200, failing at once when a child exits.
func waitHealthy(ctx context.Context, url string, exited <-chan *child) error {
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
		case c := <-exited:
			return fmt.Errorf("%s exited while starting (%v); see its output above", c.name, c.err)
		case <-time.After(200 * time.Millisecond):
		}
	}
	return fmt.Errorf("%s did not become healthy within 30s", url)
}
