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
	"runtime/debug"
	"syscall"
	"time"

	"github.com/berry-gateway/berry/edge/internal/connlimit"
	"github.com/berry-gateway/berry/edge/internal/health"
	"github.com/berry-gateway/berry/edge/internal/proxy"
	"github.com/berry-gateway/berry/edge/internal/serving"
	"github.com/berry-gateway/berry/edge/internal/status"
	"github.com/berry-gateway/berry/pkg/tokenflag"
	"github.com/valyala/fasthttp"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "berry-edge:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	fs := flag.NewFlagSet("berry-edge", flag.ContinueOnError)
	defListen := os.Getenv("BIND_ADDRESS")
	if defListen == "" {
		defListen = "127.0.0.1:3000"
	}
	listen := fs.String("listen", defListen, "client-facing HTTP listen address (env BIND_ADDRESS)")
	cpAddr := fs.String("control-plane", "", "control plane gRPC address, e.g. 127.0.0.1:9090")
	edgeID := fs.String("edge-id", "", "this edge's id in fleet status (default host name + listen port)")
	logLevel := fs.String("log-level", "info", "debug, info, warn or error")
	maxBody := fs.Int("max-request-body-bytes", 8<<20, "largest accepted request body; larger ones get 413 (settings.max_request_body_bytes can lower it per config)")
	connectTimeout := fs.Duration("connect-timeout", proxy.DefaultConnectTimeout, "upstream connect timeout")
	streamIdle := fs.Duration("stream-idle-timeout", 0, "bound on each gap between stream chunks once content flows (0: the request timeout)")
	clientWrite := fs.Duration("client-write-timeout", proxy.DefaultClientWriteTimeout, "bound on each write to a client: a client that stops reading for longer loses its response")
	maxResp := fs.Int("max-response-body-bytes", proxy.DefaultMaxResponseBody, "largest buffered upstream answer; a larger one fails the request with 502")
	maxConns := fs.Int("max-conns", 0, "most client connections served at once; more are answered 503 and closed (0: no cap)")
	metricsTokenFlag := tokenflag.Token{Name: "metrics-token", Env: "BERRY_METRICS_TOKEN", FileEnv: "BERRY_METRICS_TOKEN_FILE"}
	metricsTokenFlag.Register(fs, "Bearer token that GET /metrics requires (without one, /metrics answers loopback clients only)")
	var source sourceFlags
	source.register(fs)
	if err := fs.Parse(args); err != nil {
		return err
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

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	lis, err := net.Listen("tcp", *listen)
	if err != nil {
		return fmt.Errorf("--listen: %w", err)
	}
	if *edgeID == "" {
		host, _ := os.Hostname()
		_, port, _ := net.SplitHostPort(lis.Addr().String())
		*edgeID = host + ":" + port
	}

	var rt serving.Runtime
	src, err := startSource(ctx, source, *edgeID, lis.Addr().String(), &rt, log)
	if err != nil {
		return err
	}
	defer src.stop()
	conns := &connlimit.Listener{Listener: lis, Max: *maxConns}
	pages := &status.Pages{Runtime: &rt, Connections: conns, MetricsToken: metricsToken}
	if src.controlPlane != nil {
		pages.ControlPlane = src.controlPlane
	}
	opts := proxy.Options{
		Log: log.With("component", "proxy"), ConnectTimeout: *connectTimeout, StreamIdleTimeout: *streamIdle,
		ClientWriteTimeout: *clientWrite, MaxResponseBody: *maxResp,
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
	case <-ctx.Done():
	}
	log.Info("shutting down; finishing requests in flight")
	sctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return srv.ShutdownWithContext(sctx)
}

func buildVersion() string {
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" {
		return bi.Main.Version
	}
	return "dev"
}

type slogPrinter struct{ log *slog.Logger }

func (p slogPrinter) Printf(format string, args ...any) { p.log.Debug(fmt.Sprintf(format, args...)) }
