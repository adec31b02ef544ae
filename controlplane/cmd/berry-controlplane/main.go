// Command berry-controlplane is Berry's control plane: it keeps the gateway config in a
// bbolt file, versions every change, and streams routing snapshots to edges over gRPC.
//
//	berry-controlplane [flags]                          serve
//	berry-controlplane backup --out FILE [--server ADDR --token-file F | --data FILE]
//	berry-controlplane restore --from FILE --data FILE  (control plane stopped)
//	berry-controlplane version
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
	"github.com/berry-gateway/berry/controlplane/internal/cluster"
	"github.com/berry-gateway/berry/controlplane/internal/httpapi"
	"github.com/berry-gateway/berry/controlplane/internal/server"
	"github.com/berry-gateway/berry/controlplane/internal/store"
	berryv1 "github.com/berry-gateway/berry/pkg/api/berry/v1"
	"github.com/berry-gateway/berry/pkg/atomicfile"
	"github.com/berry-gateway/berry/pkg/buildinfo"
	"github.com/berry-gateway/berry/pkg/grpccreds"
	"github.com/berry-gateway/berry/pkg/pprofhttp"
	"github.com/berry-gateway/berry/pkg/procmetrics"
	"github.com/berry-gateway/berry/pkg/tokenflag"
	"google.golang.org/grpc"
	"google.golang.org/grpc/keepalive"
)

const usage = `berry-controlplane: Berry's control plane. It keeps the gateway config in a bbolt
file, versions every change and streams routing snapshots to edges over gRPC.

Usage:
  berry-controlplane [flags]          serve (the flags below)
  berry-controlplane backup --out FILE (--server ADDR [--token-file F] | --data FILE)
                                      a consistent copy of the data file: hot from a
                                      running control plane, or from a stopped one's file
  berry-controlplane restore --from FILE --data FILE
                                      replace the data file with a backup (control
                                      plane stopped)
  berry-controlplane version          print the version (also --version)
  berry-controlplane COMMAND --help   a command's flags

Serve flags:
`

// Serving defaults.
const (
	defaultHTTPListen    = "127.0.0.1:9091"
	defaultShutdownDelay = 5 * time.Second
	// stopTimeout bounds how long calls in flight may run on after the edge streams
	// have ended, before they are cut.
	stopTimeout = 10 * time.Second
)

func main() { os.Exit(runMain(os.Args[1:], os.Stdout, os.Stderr)) }

// runMain runs one command line and returns the exit code: 0 for success and for help.
func runMain(args []string, stdout, stderr io.Writer) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	// The first signal starts a graceful shutdown; a second one kills at once, as
	// operators expect of a second Ctrl-C.
	context.AfterFunc(ctx, stop)
	var err error
	cmd := ""
	if len(args) > 0 {
		cmd = args[0]
	}
	switch cmd {
	case "backup":
		err = backup(ctx, args[1:], stdout)
	case "restore":
		err = restore(args[1:], stdout)
	case "version":
		fmt.Fprintln(stdout, versionLine())
	case "help":
		err = serve(ctx, []string{"--help"}, stdout)
	default:
		err = serve(ctx, args, stdout)
	}
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintln(stderr, "berry-controlplane:", err)
		return 1
	}
	return 0
}

func versionLine() string { return "berry-controlplane " + buildinfo.Get().String() }

// parseFlags parses args into fs. On -h or --help it prints head and fs's flags to
// stdout and returns flag.ErrHelp; other errors point at --help.
func parseFlags(fs *flag.FlagSet, args []string, stdout io.Writer, head string) error {
	fs.SetOutput(io.Discard)
	err := fs.Parse(args)
	if errors.Is(err, flag.ErrHelp) {
		fmt.Fprint(stdout, head)
		fs.SetOutput(stdout)
		fs.PrintDefaults()
		return err
	}
	if err != nil {
		return fmt.Errorf("%w (see %s --help)", err, fs.Name())
	}
	return nil
}

func serve(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("berry-controlplane", flag.ContinueOnError)
	dataPath := fs.String("data", "berry.db", "bbolt data file (created if missing)")
	listen := fs.String("grpc-listen", "127.0.0.1:9090", "gRPC listen address for the admin and edge APIs")
	httpListen := fs.String("http-listen", defaultHTTPListen, "HTTP listen address for /metrics, the admin API (Connect protocol) and the web console (/console/); empty disables it")
	pprofListen := fs.String("pprof-listen", "", "serve Go's runtime profiles (/debug/pprof/) on this loopback address, e.g. 127.0.0.1:6061; empty: off")
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
	metricsToken := tokenflag.Token{Name: "metrics-token", Env: "BERRY_METRICS_TOKEN", FileEnv: "BERRY_METRICS_TOKEN_FILE"}
	metricsToken.Register(fs, "bearer token GET /metrics requires; without one /metrics answers loopback clients only")
	insecureFlag := fs.Bool("insecure", false, "allow serving without tokens on a non-loopback address (the gRPC APIs without role tokens, /metrics without a metrics token)")
	tlsCert := fs.String("tls-cert", "", "TLS certificate file (PEM) for the gRPC listener")
	tlsKey := fs.String("tls-key", "", "TLS private key file (PEM) for the gRPC listener")
	tlsClientCA := fs.String("tls-client-ca", "", "CA bundle (PEM); when set, clients must present a certificate it signed (mTLS)")
	scoreInterval := fs.Duration("score-interval", server.DefaultScoreInterval, "how often fleet latency/health scores are merged and pushed to edges")
	lockTimeout := fs.Duration("lock-timeout", 2*time.Second, "how long to wait for the data file's lock before failing")
	edgeExpiry := fs.Duration("edge-expiry", server.DefaultEdgeExpiry, "how long fleet status lists an edge after it disconnected; 0 keeps every edge")
	shutdownDelay := fs.Duration("shutdown-delay", defaultShutdownDelay, "on SIGTERM/SIGINT, how long to go on serving while health reports NOT_SERVING, before ending the edge streams; 0 skips it")
	showVersion := fs.Bool("version", false, "print the version and exit")
	clusterOpts := registerClusterFlags(fs)
	if err := parseFlags(fs, args, stdout, usage); err != nil {
		return err
	}
	if *showVersion {
		fmt.Fprintln(stdout, versionLine())
		return nil
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unknown command %q (see berry-controlplane --help)", fs.Arg(0))
	}
	if *edgeExpiry < 0 {
		return fmt.Errorf("--edge-expiry %v: must not be negative", *edgeExpiry)
	}
	if *shutdownDelay < 0 {
		return fmt.Errorf("--shutdown-delay %v: must not be negative", *shutdownDelay)
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
	mtok, err := metricsToken.Value(fs)
	if err != nil {
		return err
	}
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(*logLevel)); err != nil {
		return fmt.Errorf("--log-level: %w", err)
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: lvl}))

	if err := clusterOpts.load(log); err != nil {
		return err
	}
	policy := auth.NewPolicy(clusterOpts.credentials(creds), server.ReadMethods)
	tlsOn := *tlsCert != "" || *tlsKey != "" || *tlsClientCA != ""
	if err := checkExposure(log, *listen, policy.Enabled(), tlsOn, *insecureFlag); err != nil {
		return err
	}
	if err := checkHTTPExposure(log, *httpListen, mtok != "", *insecureFlag); err != nil {
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

	st, err := store.Open(*dataPath, store.Options{LockTimeout: *lockTimeout})
	if err != nil {
		if errors.Is(err, store.ErrLocked) {
			return fmt.Errorf("%w: is another berry-controlplane using it?", err)
		}
		return err
	}
	defer st.Close()

	srv := server.New(st, server.Options{Log: log, ScoreInterval: *scoreInterval, EdgeExpiry: *edgeExpiry, Registry: procmetrics.NewRegistry()})
	var node *cluster.Node
	if clusterOpts.enabled() {
		peerTLS := grpccreds.Client{CA: *tlsClientCA, Cert: *tlsCert, Key: *tlsKey}
		if node, err = clusterOpts.start(ctx, log, st, srv, *dataPath, *listen, policy.Enabled(), peerTLS); err != nil {
			return err
		}
		defer node.Shutdown()
	}
	if *bootstrap != "" {
		doc, err := os.ReadFile(*bootstrap)
		if err != nil {
			return fmt.Errorf("--bootstrap: %w", err)
		}
		if node != nil {
			bootstrapLeader(ctx, log, node, srv, doc, *bootstrap)
		} else if err := srv.Bootstrap(ctx, doc, *bootstrap); err != nil {
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
	defer lis.Close()
	var (
		hs      *httpapi.Server
		hl      net.Listener
		httpURL string
	)
	if *httpListen != "" {
		if hl, err = net.Listen("tcp", *httpListen); err != nil {
			return fmt.Errorf("--http-listen: %w", err)
		}
		defer hl.Close()
		hs = httpapi.New(httpapi.Options{Metrics: srv.Registry(), MetricsToken: mtok, OpenMetrics: *insecureFlag, Log: log})
		httpURL = "http://" + hl.Addr().String()
	}
	if *pprofListen != "" {
		ps, err := pprofhttp.Listen(*pprofListen)
		if err != nil {
			return fmt.Errorf("--pprof-listen: %w", err)
		}
		defer ps.Close()
		log.Info("serving runtime profiles", "addr", "http://"+ps.Addr()+"/debug/pprof/")
	}
	// The score loop runs until Drain ends it, not until the signal: edges keep
	// getting scores while the control plane drains.
	srv.Start(context.Background())
	gs := srv.NewGRPCServer(policy, serverOpts...)
	if hs != nil {
		if err := mountConsole(log, hs, *httpListen, gs, policy, *insecureFlag); err != nil {
			return err
		}
	}

	errc := make(chan error, 2)
	go func() {
		if err := gs.Serve(lis); err != nil && !errors.Is(err, grpc.ErrServerStopped) {
			errc <- fmt.Errorf("gRPC server: %w", err)
		}
	}()
	if hs != nil {
		go func() {
			if err := hs.Serve(hl); err != nil {
				errc <- fmt.Errorf("HTTP server: %w", err)
			}
		}()
	}
	log.Info("control plane listening", "grpc", lis.Addr().String(), "http", httpURL, "data", *dataPath,
		"auth", policy.Enabled(), "tls", tlsOn, "mtls", *tlsClientCA != "", "metrics_token", mtok != "",
		"edge_expiry", *edgeExpiry, "version", buildinfo.Get().Version)

	var serveErr error
	delay := *shutdownDelay
	select {
	case serveErr = <-errc:
		log.Error("stopping", "err", serveErr)
		delay = 0 // a control plane that cannot serve has nothing to drain gently
	case <-ctx.Done():
		log.Info("shutting down", "shutdown_delay", delay)
	}
	// The metrics go on answering while gRPC drains: the drain is what an operator
	// watches them for.
	srv.Drain(context.Background(), gs, delay, stopTimeout)
	if hs != nil {
		hctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := hs.Shutdown(hctx); err != nil {
			log.Warn("HTTP server shutdown", "err", err)
		}
	}
	log.Info("stopped")
	return serveErr
}

// checkHTTPExposure refuses to serve /metrics on a non-loopback address without a
// metrics token unless insecure: without a token only loopback clients would be let
// in, so such an address is a mistake, unless the operator asked for no tokens.
func checkHTTPExposure(log *slog.Logger, listen string, token, insecure bool) error {
	if listen == "" || token || loopback(listen) {
		return nil
	}
	if !insecure {
		return fmt.Errorf("--http-listen %s is not a loopback address and no --metrics-token is set; set one, or pass --insecure to serve /metrics to anyone", listen)
	}
	log.Warn("no metrics token: /metrics is served UNAUTHENTICATED to anyone who can connect", "http_listen", listen)
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

const backupUsage = `Usage: berry-controlplane backup --out FILE (--server ADDR [--token-file F] | --data FILE)

A consistent copy of the data file: from a running control plane through the Backup
RPC (admin role), or from the file of a stopped one.

Flags:
`

const restoreUsage = `Usage: berry-controlplane restore --from FILE --data FILE

Replaces the data file with a backup, atomically, and gives it a new lineage so that
edges take its versions. Stop the control plane first.

Flags:
`

// backup writes a consistent copy of the data file: from a running control plane
// through the Backup RPC (the file is locked while it runs), or straight from the
// file when it is stopped.
func backup(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("berry-controlplane backup", flag.ContinueOnError)
	out := fs.String("out", "", "file to write the backup to (required)")
	addr := fs.String("server", os.Getenv("BERRY_SERVER"), "running control plane to back up (env BERRY_SERVER)")
	tokenFlag := tokenflag.Token{Name: "token", Env: "BERRY_TOKEN", FileEnv: "BERRY_TOKEN_FILE"}
	tokenFlag.Register(fs, "admin token")
	caFile := fs.String("tls-ca", "", "CA bundle (PEM) to verify the server; enables TLS")
	dataPath := fs.String("data", "", "data file of a stopped control plane (instead of --server)")
	if err := parseFlags(fs, args, stdout, backupUsage); err != nil {
		return err
	}
	token, err := tokenFlag.Value(fs)
	if err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	if *out == "" || (*addr == "") == (*dataPath == "") {
		return errors.New("backup: give --out and exactly one of --server or --data")
	}
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
		fmt.Fprintf(stdout, "wrote %d bytes to %s\n", n, *out)
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
	fmt.Fprintf(stdout, "wrote %d bytes to %s\n", n, *out)
	return nil
}

func restore(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("berry-controlplane restore", flag.ContinueOnError)
	from := fs.String("from", "", "backup file (required)")
	dataPath := fs.String("data", "berry.db", "data file to replace (the control plane must be stopped)")
	if err := parseFlags(fs, args, stdout, restoreUsage); err != nil {
		return err
	}
	if *from == "" {
		return errors.New("restore: --from is required")
	}
	if err := store.Restore(*from, *dataPath); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "restored %s from %s (new lineage: edges will take its versions)\n", *dataPath, *from)
	return nil
}
