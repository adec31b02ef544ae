// Command berry-controlplane is Berry's control plane: it keeps the gateway config in a
// bbolt file, versions every change, and streams routing snapshots to edges over gRPC.
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

	"github.com/berry-gateway/berry/controlplane/internal/server"
	"github.com/berry-gateway/berry/controlplane/internal/store"
	"google.golang.org/grpc"
	"google.golang.org/grpc/keepalive"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "berry-controlplane:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	fs := flag.NewFlagSet("berry-controlplane", flag.ContinueOnError)
	dataPath := fs.String("data", "berry.db", "bbolt data file (created if missing)")
	listen := fs.String("grpc-listen", "127.0.0.1:9090", "gRPC listen address for the admin and edge APIs")
	bootstrap := fs.String("bootstrap", "", "seed-format TOML file imported only when the store is empty")
	logLevel := fs.String("log-level", "info", "debug, info, warn or error")
	if err := fs.Parse(args); err != nil {
		return err
	}
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(*logLevel)); err != nil {
		return fmt.Errorf("--log-level: %w", err)
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: lvl}))

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	st, err := store.Open(*dataPath, store.Options{})
	if err != nil {
		return err
	}
	defer st.Close()

	srv := server.New(st, log)
	if *bootstrap != "" {
		doc, err := os.ReadFile(*bootstrap)
		if err != nil {
			return fmt.Errorf("--bootstrap: %w", err)
		}
		if err := srv.Bootstrap(ctx, doc, *bootstrap); err != nil {
			return err
		}
	}
	if err := srv.Load(ctx); err != nil {
		return err
	}

	lis, err := net.Listen("tcp", *listen)
	if err != nil {
		return fmt.Errorf("--grpc-listen: %w", err)
	}
	gs := grpc.NewServer(
		// Edges hold streams for days; keepalives find dead ones behind NATs and LBs.
		grpc.KeepaliveParams(keepalive.ServerParameters{Time: 30 * time.Second, Timeout: 10 * time.Second}),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 10 * time.Second, PermitWithoutStream: true}),
	)
	srv.Register(gs)

	errc := make(chan error, 1)
	go func() { errc <- gs.Serve(lis) }()
	log.Info("control plane listening", "grpc", lis.Addr().String(), "data", *dataPath)

	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	log.Info("shutting down")
	srv.Shutdown() // end edge streams so GracefulStop can return
	stopped := make(chan struct{})
	go func() { gs.GracefulStop(); close(stopped) }()
	select {
	case <-stopped:
	case <-time.After(10 * time.Second):
		gs.Stop()
	}
	if err := <-errc; err != nil && !errors.Is(err, grpc.ErrServerStopped) {
		return err
	}
	return nil
}
