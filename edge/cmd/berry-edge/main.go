// Command berry-edge is Berry's data plane: a stateless OpenAI-compatible proxy that
// serves clients from the last routing snapshot it accepted from the control plane.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/berry-gateway/berry/edge/internal/accesslog"
	"github.com/berry-gateway/berry/edge/internal/connlimit"
	"github.com/berry-gateway/berry/edge/internal/health"
	"github.com/berry-gateway/berry/edge/internal/proxy"
	"github.com/berry-gateway/berry/edge/internal/serving"
	"github.com/berry-gateway/berry/edge/internal/status"
	"github.com/berry-gateway/berry/edge/internal/tracing"
	"github.com/berry-gateway/berry/pkg/buildinfo"
	"github.com/berry-gateway/berry/pkg/pprofhttp"
	"github.com/berry-gateway/berry/pkg/procmetrics"
	"github.com/berry-gateway/berry/pkg/tokenflag"
	"github.com/valyala/fasthttp"
)

func main() {
	var err error
	if len(os.Args) > 1 && os.Args[1] == "healthcheck" {
		err = healthcheck(os.Args[2:])
	} else {
		err = run(os.Args[1:])
	}
	switch {
	case errors.Is(err, flag.ErrHelp):
	case errors.Is(err, errUnhealthy):
		os.Exit(1) // already said
	case err != nil:
		fmt.Fprintln(os.Stderr, "berry-edge:", err)
		os.Exit(1)
	}
}

const usage = `Usage:
  berry-edge --control-plane ADDR [flags]   serve with config from a control plane
  berry-edge --config FILE [flags]          serve a TOML file, with no control plane
  berry-edge --check-config FILE            validate a TOML file and exit
  berry-edge healthcheck [--url URL]        exit 0 when the edge at URL is ready
  berry-edge --version

Flags:
`

// defaultListen is --listen's default: BIND_ADDRESS, else loopback port 3000.
func defaultListen() string {
	if a := os.Getenv("BIND_ADDRESS"); a != "" {
		return a
	}
	return "127.0.0.1:3000"
}

func run(args []string) error {
	fs := flag.NewFlagSet("berry-edge", flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), usage)
		fs.PrintDefaults()
	}
	defListen := defaultListen()
	listen := fs.String("listen", defListen, "client-facing HTTP listen address (env BIND_ADDRESS)")
	cpAddr := fs.String("control-plane", "", "control plane gRPC address, e.g. 127.0.0.1:9090; several, comma-separated, or a DNS name with a record per node: the edge connects to one and moves to another when it fails")
	edgeID := fs.String("edge-id", "", "this edge's id in fleet status (default host name + listen port)")
	logLevel := fs.String("log-level", "info", "debug, info, warn or error")
	maxBody := fs.Int("max-request-body-bytes", 8<<20, "largest accepted request body; larger ones get 413 (settings.max_request_body_bytes can lower it per config)")
	connectTimeout := fs.Duration("connect-timeout", proxy.DefaultConnectTimeout, "upstream connect timeout")
	streamIdle := fs.Duration("stream-idle-timeout", 0, "bound on each gap between stream chunks once content flows (0: the request timeout)")
	clientWrite := fs.Duration("client-write-timeout", proxy.DefaultClientWriteTimeout, "bound on each write to a client: a client that stops reading for longer loses its response")
	maxResp := fs.Int("max-response-body-bytes", proxy.DefaultMaxResponseBody, "largest buffered upstream answer; a larger one fails the request with 502")
	maxConns := fs.Int("max-conns", 0, "most client connections served at once; more are answered 503 and closed (0: no cap)")
	version := fs.Bool("version", false, "print the version and exit")
	checkConfig := fs.String("check-config", "", "validate this seed-format TOML file as --config would load it, print every problem, and exit (non-zero when invalid)")
	accessLog := fs.String("access-log", envOr("BERRY_ACCESS_LOG", "-"), `where one JSON line per client request goes: "-" (standard output), a file path (reopened on SIGHUP, for logrotate) or "off" (env BERRY_ACCESS_LOG)`)
	accessLogFormat := fs.String("access-log-format", "json", "access-log line format: json or logfmt")
	accessLogSample := fs.Float64("access-log-sample-ok", 1, "share of successful requests logged, 0 to 1; errors and failed streams are always logged")
	shutdownDelay := fs.Duration("shutdown-delay", 5*time.Second, "on SIGTERM, how long /readyz answers 503 while requests are still served, so load balancers stop sending new ones")
	drainTimeout := fs.Duration("drain-timeout", 120*time.Second, "after --shutdown-delay, how long requests in flight may take to finish; streams still open then end with an error event")
	pprofListen := fs.String("pprof-listen", "", "serve Go's runtime profiles (/debug/pprof/) on this loopback address, e.g. 127.0.0.1:6060; empty: off")
	metricsTokenFlag := tokenflag.Token{Name: "metrics-token", Env: "BERRY_METRICS_TOKEN", FileEnv: "BERRY_METRICS_TOKEN_FILE"}
	metricsTokenFlag.Register(fs, "Bearer token that GET /metrics requires (without one, /metrics answers loopback clients only)")
	var source sourceFlags
	source.register(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q (see --help)", fs.Arg(0))
	}
	if *version {
		fmt.Println("berry-edge", buildinfo.Get())
		return nil
	}
	if *checkConfig != "" {
		return checkConfigFile(*checkConfig, os.Stdout)
	}
	source.cpAddr = *cpAddr
	metricsToken, err := metricsTokenFlag.Value(fs)
	if err != nil {
		return err
	}
	if source.token, err = source.tokenFlag.Value(fs); err != nil {
		return err
	}
	if *cpAddr == "" && source.configPath == "" {
		return errors.New("--control-plane (or --config for standalone mode) is required")
	}
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(*logLevel)); err != nil {
		return fmt.Errorf("--log-level: %w", err)
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: lvl}))
	format, err := accesslog.ParseFormat(*accessLogFormat)
	if err != nil {
		return fmt.Errorf("--access-log-format: %w", err)
	}
	if *accessLogSample < 0 || *accessLogSample > 1 {
		return errors.New("--access-log-sample-ok must be between 0 and 1")
	}

	signalled, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	// What keeps the edge's config, health and fleet view current runs until the
	// drain is over, not just until the signal.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	lis, err := net.Listen("tcp", *listen)
	if err != nil {
		return fmt.Errorf("--listen: %w", err)
	}
	if *edgeID == "" {
		host, _ := os.Hostname()
		_, port, _ := net.SplitHostPort(lis.Addr().String())
		*edgeID = host + ":" + port
	}

	var al *accesslog.Logger
	if *accessLog != "off" {
		if al, err = accesslog.Open(*accessLog, *edgeID, format, *accessLogSample); err != nil {
			return fmt.Errorf("--access-log: %w", err)
		}
		defer al.Close()
		go reopenOnHUP(ctx, al, log)
	}

	if *pprofListen != "" {
		ps, err := pprofhttp.Listen(*pprofListen)
		if err != nil {
			return fmt.Errorf("--pprof-listen: %w", err)
		}
		defer ps.Close()
		log.Info("serving runtime profiles", "addr", "http://"+ps.Addr()+"/debug/pprof/")
	}

	var rt serving.Runtime
	src, err := startSource(ctx, source, *edgeID, lis.Addr().String(), &rt, log)
	if err != nil {
		return err
	}
	defer src.stop()
	conns := &connlimit.Listener{Listener: lis, Max: *maxConns}
	pages := &status.Pages{Runtime: &rt, Connections: conns, MetricsToken: metricsToken,
		Process: procmetrics.NewRegistry()}
	if al != nil {
		pages.AccessLog = al
	}
	if src.controlPlane != nil {
		pages.ControlPlane = src.controlPlane
	}
	opts := proxy.Options{
		Log: log.With("component", "proxy"), ConnectTimeout: *connectTimeout, StreamIdleTimeout: *streamIdle,
		ClientWriteTimeout: *clientWrite, MaxResponseBody: *maxResp, AccessLog: al,
	}
	tracer, err := tracing.FromEnv(ctx, "berry-edge", *edgeID, buildinfo.Get().Version)
	if err != nil {
		return err
	}
	if tracer != nil {
		opts.Tracer = tracer.Tracer
		log.Info("tracing on", "protocol", tracer.Protocol)
		defer func() {
			sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if err := tracer.Shutdown(sctx); err != nil {
				log.Warn("exporting the last spans", "err", err)
			}
		}()
	}
	if src.controlPlane != nil {
		opts.Freshness = src.controlPlane
	}
	h := proxy.New(&rt, pages, opts)
	checker := &health.Checker{Runtime: &rt, Log: log.With("component", "health")}
	go checker.Run(ctx)
	srv := &fasthttp.Server{
		Handler:            h.ServeHTTP,
		Name:               "berry-edge",
		MaxRequestBodySize: *maxBody,
		ReadTimeout:        60 * time.Second,
		IdleTimeout:        120 * time.Second,
		// Bounds writing a whole buffered answer; a stream resets it for every write.
		WriteTimeout: *clientWrite,
		// An idle keep-alive connection gives its read and write buffers back.
		ReduceMemoryUsage: true,
		// Error bodies for malformed HTTP must be OpenAI-style JSON too.
		ErrorHandler: func(ctx *fasthttp.RequestCtx, err error) {
			proxy.WriteProtocolError(ctx, err)
		},
		Logger: slogPrinter{log},
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(conns) }()
	log.Info("edge listening", "addr", lis.Addr().String(), "edge_id", *edgeID, "control_plane", *cpAddr, "config", source.configPath)

	select {
	case err := <-errc:
		return err
	case <-signalled.Done():
	}
	stop() // a second signal ends the process at once
	return drain(log, srv, h, pages, errc, *shutdownDelay, *drainTimeout)
}

// drain shuts the edge down without losing a request it accepted: /readyz turns 503
// and requests are still served for shutdownDelay, so load balancers take the edge
// out first; then it stops accepting and waits up to drainTimeout for requests in
// flight. Streams still open then end with an error event saying so, never a silent
// cut; buffered requests still waiting on their upstream are cut. A second signal
// ends the process at once.
func drain(log *slog.Logger, srv *fasthttp.Server, h *proxy.Handler, pages *status.Pages, errc <-chan error,
	shutdownDelay, drainTimeout time.Duration) error {
	pages.Drain()
	log.Info("draining: /readyz answers 503, requests are still served", "shutdown_delay", shutdownDelay)
	select {
	case err := <-errc:
		return err
	case <-time.After(shutdownDelay):
	}
	log.Info("no longer accepting connections; finishing requests in flight", "drain_timeout", drainTimeout,
		"streams", h.Streams())
	ctx, cancel := context.WithTimeout(context.Background(), drainTimeout)
	defer cancel()
	err := srv.ShutdownWithContext(ctx)
	if !errors.Is(err, context.DeadlineExceeded) {
		log.Info("drained")
		return err
	}
	n := h.Interrupt()
	log.Warn("drain timeout: ending the streams still open with an error event", "streams", n)
	// Each interrupted stream writes its error event and leaves the set; give them a
	// moment to, but not for ever (a client that does not read).
	for deadline := time.Now().Add(5 * time.Second); h.Streams() > 0 && time.Now().Before(deadline); {
		time.Sleep(20 * time.Millisecond)
	}
	return nil
}

// reopenOnHUP reopens the access log on every SIGHUP, as logrotate expects.
func reopenOnHUP(ctx context.Context, al *accesslog.Logger, log *slog.Logger) {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	for {
		select {
		case <-ctx.Done():
			return
		case <-hup:
			if err := al.Reopen(); err != nil {
				log.Error("cannot reopen the access log", "err", err)
			} else {
				log.Info("access log reopened")
			}
		}
	}
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

type slogPrinter struct{ log *slog.Logger }

func (p slogPrinter) Printf(format string, args ...any) { p.log.Debug(fmt.Sprintf(format, args...)) }
