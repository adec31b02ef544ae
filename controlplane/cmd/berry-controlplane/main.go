// Command berry-controlplane is Berry's control plane: it keeps the gateway config in a
// bbolt file, versions every change, and streams routing snapshots to edges over gRPC.
//
//	berry-controlplane [flags]                          serve
//	berry-controlplane backup --out FILE [--server ADDR --token-file F | --data FILE]
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
	"github.com/berry-gateway/berry/pkg/tokenflag"
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
	roles := []struct {
		auth.Credential
		token tokenflag.Token
		what  string
	}{
		{auth.Credential{Name: "admin", Role: auth.RoleAdmin}, tokenflag.Token{Name: "admin-token", Env: "BERRY_ADMIN_TOKEN", FileEnv: "BERRY_ADMIN_TOKEN_FILE"}, "token of the admin role"},
		{auth.Credential{Name: "read", Role: auth.RoleRead}, tokenflag.Token{Name: "read-token", Env: "BERRY_READ_TOKEN", FileEnv: "BERRY_READ_TOKEN_FILE"}, "token of the read-only role"},
		{auth.Credential{Name: "edge", Role: auth.RoleEdge}, tokenflag.Token{Name: "edge-token", Env: "BERRY_EDGE_TOKEN", FileEnv: "BERRY_EDGE_TOKEN_FILE"}, "token of the edge role, which edges present"},
	}
	for i := range roles {
		roles[i].token.Register(fs, roles[i].what)
	}
	insecureFlag := fs.Bool("insecure", false, "allow serving without any token on a non-loopback address")
	tlsCert := fs.String("tls-cert", "", "TLS certificate file (PEM) for the gRPC listener")
	tlsKey := fs.String("tls-key", "", "TLS private key file (PEM) for the gRPC listener")
	tlsClientCA := fs.String("tls-client-ca", "", "CA bundle (PEM); when set, clients must present a certificate it signed (mTLS)")
	scoreInterval := fs.Duration("score-interval", server.DefaultScoreInterval, "how often fleet latency/health scores are merged and pushed to edges")
	lockTimeout := fs.Duration("lock-timeout", 2*time.Second, "how long to wait for the data file's lock before failing")
	edgeExpiry := fs.Duration("edge-expiry", server.DefaultEdgeExpiry, "how long fleet status lists an edge after it disconnected; 0 keeps every edge")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *edgeExpiry < 0 {
		return fmt.Errorf("--edge-expiry %v: must not be negative", *edgeExpiry)
	}
	creds := make([]auth.Credential, len(roles))
	for i, r := range roles {
		tok, err := r.token.Value(fs)
		if err != nil {
			return err
		}
		creds[i] = r.Credential
		creds[i].Token = tok
	}
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(*logLevel)); err != nil {
		return fmt.Errorf("--log-level: %w", err)
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: lvl}))

	policy := auth.NewPolicy(creds, server.ReadMethods)
	tlsOn := *tlsCert != "" || *tlsKey != "" || *tlsClientCA != ""
	if err := checkExposure(log, *listen, policy.Enabled(), tlsOn, *insecureFlag); err != nil {
		return err
	}
	serverOpts := []grpc.ServerOption{
		// Edges hold streams for days; keepalives find dead ones behind NATs and LBs.
		grpc.KeepaliveParams(keepalive.ServerParameters{Time: 30 * time.Second, Timeout: 10 * time.Second}),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 10 * time.Second, PermitWithoutStream: true}),
	}
	if tlsOn {
		tc, err := grpccreds.Server(*tlsCert, *tlsKey, *tlsClientCA)
		if err != nil {
			return err
		}
		serverOpts = append(serverOpts, grpc.Creds(tc))
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

	srv := server.New(st, server.Options{Log: log, ScoreInterval: *scoreInterval, EdgeExpiry: *edgeExpiry})
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
	gs := srv.NewGRPCServer(policy, serverOpts...)

	errc := make(chan error, 1)
	go func() { errc <- gs.Serve(lis) }()
	log.Info("control plane listening", "grpc", lis.Addr().String(), "data", *dataPath,
		"auth", policy.Enabled(), "tls", tlsOn, "mtls", *tlsClientCA != "", "edge_expiry", *edgeExpiry)

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

// checkExposure refuses to serve without tokens on a non-loopback address unless
// insecure, and warns of what travels unprotected: everything without tokens, the
// tokens themselves (and configs with provider keys) without TLS.
func checkExposure(log *slog.Logger, listen string, tokens, tlsOn, insecure bool) error {
	local := loopback(listen)
	switch {
	case !tokens && !local && !insecure:
		return fmt.Errorf("--grpc-listen %s is not a loopback address and no --admin-token, --read-token or --edge-token is set; set tokens, or pass --insecure to serve unauthenticated", listen)
	case !tokens:
		log.Warn("no tokens configured: the admin API is UNAUTHENTICATED; anyone who can connect may change the config", "listen", listen)
	case !tlsOn && !local:
		log.Warn("tokens over PLAINTEXT gRPC on a non-loopback address: anyone on the network path can read the tokens, and configs with their provider keys, and reuse them; serve with --tls-cert and --tls-key", "listen", listen)
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
	tokenFlag := tokenflag.Token{Name: "token", Env: "BERRY_TOKEN", FileEnv: "BERRY_TOKEN_FILE"}
	tokenFlag.Register(fs, "admin token")
	caFile := fs.String("tls-ca", "", "CA bundle (PEM) to verify the server; enables TLS")
	dataPath := fs.String("data", "", "data file of a stopped control plane (instead of --server)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	token, err := tokenFlag.Value(fs)
	if err != nil {
		return fmt.Errorf("backup: %w", err)
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
	opts, err := grpccreds.Client{Token: token, CA: *caFile}.DialOptions()
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
