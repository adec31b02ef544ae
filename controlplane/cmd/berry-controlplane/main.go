// Command berry-controlplane is Berry's control plane: it keeps the gateway config in a
// bbolt file, versions every change, and streams routing snapshots to edges over gRPC.
//
//	berry-controlplane [flags]                          serve
//	berry-controlplane backup --out FILE [--server ADDR --token T | --data FILE]
//	berry-controlplane restore --from FILE --data FILE  (control plane stopped)
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/berry-gateway/berry/controlplane/internal/auth"
	"github.com/berry-gateway/berry/controlplane/internal/server"
	"github.com/berry-gateway/berry/controlplane/internal/store"
	berryv1 "github.com/berry-gateway/berry/pkg/api/berry/v1"
	"github.com/berry-gateway/berry/pkg/atomicfile"
	"github.com/berry-gateway/berry/pkg/grpccreds"
	"google.golang.org/grpc"
	"google.golang.org/grpc/keepalive"
)

func main() {
	var err error
	switch {
	case len(os.Args) > 1 && os.Args[1] == "backup":
		err = backup(os.Args[2:])
	case len(os.Args) > 1 && os.Args[1] == "restore":
		err = restore(os.Args[2:])
	default:
		err = run(os.Args[1:])
	}
	if err != nil {
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
	adminToken := fs.String("admin-token", os.Getenv("BERRY_ADMIN_TOKEN"), "token of the admin role (env BERRY_ADMIN_TOKEN)")
	readToken := fs.String("read-token", os.Getenv("BERRY_READ_TOKEN"), "token of the read-only role (env BERRY_READ_TOKEN)")
	edgeToken := fs.String("edge-token", os.Getenv("BERRY_EDGE_TOKEN"), "token edges present (env BERRY_EDGE_TOKEN)")
	insecureFlag := fs.Bool("insecure", false, "allow serving without any token on a non-loopback address")
	tlsCert := fs.String("tls-cert", "", "TLS certificate file (PEM) for the gRPC listener")
	tlsKey := fs.String("tls-key", "", "TLS private key file (PEM) for the gRPC listener")
	tlsClientCA := fs.String("tls-client-ca", "", "CA bundle (PEM); when set, clients must present a certificate it signed (mTLS)")
	scoreInterval := fs.Duration("score-interval", server.DefaultScoreInterval, "how often fleet latency/health scores are merged and pushed to edges")
	lockTimeout := fs.Duration("lock-timeout", 2*time.Second, "how long to wait for the data file's lock before failing")
	if err := fs.Parse(args); err != nil {
		return err
	}
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(*logLevel)); err != nil {
		return fmt.Errorf("--log-level: %w", err)
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: lvl}))

	policy := auth.NewPolicy([]auth.Credential{
		{Name: "admin", Role: auth.RoleAdmin, Token: *adminToken},
		{Name: "read", Role: auth.RoleRead, Token: *readToken},
		{Name: "edge", Role: auth.RoleEdge, Token: *edgeToken},
	}, server.ReadMethods)
	if !policy.Enabled() {
		if !loopback(*listen) && !*insecureFlag {
			return fmt.Errorf("--grpc-listen %s is not a loopback address and no --admin-token, --read-token or --edge-token is set; set tokens, or pass --insecure to serve unauthenticated", *listen)
		}
		log.Warn("no tokens configured: the admin API is UNAUTHENTICATED; anyone who can connect may change the config", "listen", *listen)
	}
	serverOpts := []grpc.ServerOption{
		// Edges hold streams for days; keepalives find dead ones behind NATs and LBs.
		grpc.KeepaliveParams(keepalive.ServerParameters{Time: 30 * time.Second, Timeout: 10 * time.Second}),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 10 * time.Second, PermitWithoutStream: true}),
		grpc.ChainUnaryInterceptor(policy.Unary),
		grpc.ChainStreamInterceptor(policy.Stream),
		// Whole configs travel in one message: allow large ones.
		grpc.MaxRecvMsgSize(64 << 20),
	}
	if *tlsCert != "" || *tlsKey != "" || *tlsClientCA != "" {
		creds, err := grpccreds.Server(*tlsCert, *tlsKey, *tlsClientCA)
		if err != nil {
			return err
		}
		serverOpts = append(serverOpts, grpc.Creds(creds))
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	st, err := store.Open(*dataPath, store.Options{LockTimeout: *lockTimeout})
	if err != nil {
		if errors.Is(err, store.ErrLocked) {
			return fmt.Errorf("%w: is another berry-controlplane using it?", err)
		}
		return err
	}
	defer st.Close()

	srv := server.New(st, server.Options{Log: log, ScoreInterval: *scoreInterval})
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
	srv.Start(ctx)

	lis, err := net.Listen("tcp", *listen)
	if err != nil {
		return fmt.Errorf("--grpc-listen: %w", err)
	}
	gs := grpc.NewServer(serverOpts...)
	srv.Register(gs)

	errc := make(chan error, 1)
	go func() { errc <- gs.Serve(lis) }()
	log.Info("control plane listening", "grpc", lis.Addr().String(), "data", *dataPath,
		"auth", policy.Enabled(), "tls", *tlsCert != "", "mtls", *tlsClientCA != "")

	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	log.Info("shutting down")
	srv.Shutdown() // end edge streams and the score loop so GracefulStop can return
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

// loopback reports whether addr only accepts connections from this host.
func loopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// backup writes a consistent copy of the data file: from a running control plane
// through the Backup RPC (the file is locked while it runs), or straight from the
// file when it is stopped.
func backup(args []string) error {
	fs := flag.NewFlagSet("berry-controlplane backup", flag.ContinueOnError)
	out := fs.String("out", "", "file to write the backup to (required)")
	addr := fs.String("server", os.Getenv("BERRY_SERVER"), "running control plane to back up (env BERRY_SERVER)")
	token := fs.String("token", os.Getenv("BERRY_TOKEN"), "admin token (env BERRY_TOKEN)")
	caFile := fs.String("tls-ca", "", "CA bundle (PEM) to verify the server; enables TLS")
	dataPath := fs.String("data", "", "data file of a stopped control plane (instead of --server)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *out == "" || (*addr == "") == (*dataPath == "") {
		return errors.New("backup: give --out and exactly one of --server or --data")
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if *dataPath != "" {
		st, err := store.Open(*dataPath, store.Options{})
		if err != nil {
			return fmt.Errorf("backup: %w", err)
		}
		defer st.Close()
		n, err := st.BackupFile(ctx, *out)
		if err != nil {
			return fmt.Errorf("backup: %w", err)
		}
		fmt.Printf("wrote %d bytes to %s\n", n, *out)
		return nil
	}
	opts, err := grpccreds.Client{Token: *token, CA: *caFile}.DialOptions()
	if err != nil {
		return err
	}
	conn, err := grpc.NewClient(*addr, opts...)
	if err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	defer conn.Close()
	stream, err := berryv1.NewAdminServiceClient(conn).Backup(ctx, &berryv1.BackupRequest{})
	if err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	var n int64
	err = atomicfile.Write(*out, 0o600, func(w io.Writer) error {
		for {
			msg, err := stream.Recv()
			if errors.Is(err, io.EOF) {
				return nil
			}
			if err != nil {
				return err
			}
			k, err := w.Write(msg.GetData())
			n += int64(k)
			if err != nil {
				return err
			}
		}
	})
	if err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	fmt.Printf("wrote %d bytes to %s\n", n, *out)
	return nil
}

func restore(args []string) error {
	fs := flag.NewFlagSet("berry-controlplane restore", flag.ContinueOnError)
	from := fs.String("from", "", "backup file (required)")
	dataPath := fs.String("data", "berry.db", "data file to replace (the control plane must be stopped)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *from == "" {
		return errors.New("restore: --from is required")
	}
	if err := store.Restore(*from, *dataPath); err != nil {
		return err
	}
	fmt.Printf("restored %s from %s (new lineage: edges will take its versions)\n", *dataPath, *from)
	return nil
}
