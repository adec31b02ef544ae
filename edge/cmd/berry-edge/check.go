package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/berry-gateway/berry/edge/internal/serving"
	berryv1 "github.com/berry-gateway/berry/pkg/api/berry/v1"
	"github.com/berry-gateway/berry/pkg/config"
)

// checkConfigFile validates a seed-format file exactly as --config would load it
// (parsing, validation, and building the routing tables through the provider
// registry), printing warnings and every problem found to out.
func checkConfigFile(path string, out io.Writer) error {
	doc, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("--check-config: %w", err)
	}
	cfg, warnings, err := config.ParseTOML(doc)
	for _, w := range warnings {
		fmt.Fprintf(out, "warning: %s\n", w)
	}
	if err == nil {
		var rt serving.Runtime
		err = rt.Apply(&berryv1.Snapshot{Version: 1, Config: cfg})
	}
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	fmt.Fprintf(out, "%s: valid (%d providers, %d models, %d users)\n", path,
		len(cfg.GetProviders()), len(cfg.GetModels()), len(cfg.GetUsers()))
	return nil
}

// errUnhealthy is healthcheck's failure, already reported.
var errUnhealthy = errors.New("unhealthy")

// healthcheck asks a running edge whether it is ready: for container HEALTHCHECKs in
// images without a shell or curl.
func healthcheck(args []string) error {
	fs := flag.NewFlagSet("berry-edge healthcheck", flag.ContinueOnError)
	_, port, err := net.SplitHostPort(defaultListen())
	if err != nil {
		port = "3000"
	}
	url := fs.String("url", "http://127.0.0.1:"+port+"/readyz", "the edge's readiness URL (default from BIND_ADDRESS's port)")
	timeout := fs.Duration("timeout", 3*time.Second, "how long to wait for the answer")
	if err := fs.Parse(args); err != nil {
		return err
	}
	c := &http.Client{Timeout: *timeout}
	resp, err := c.Get(*url)
	if err != nil {
		fmt.Fprintln(os.Stderr, "berry-edge healthcheck:", err)
		return errUnhealthy
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if resp.StatusCode != http.StatusOK {
		fmt.Fprintf(os.Stderr, "berry-edge healthcheck: %s: %s %s\n", *url, resp.Status, body)
		return errUnhealthy
	}
	return nil
}
