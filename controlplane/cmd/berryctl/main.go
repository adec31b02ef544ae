// Command berryctl is the operators' CLI on the control plane's admin API, in the
// kubectl/etcdctl tradition: tables for people, -o json|yaml (and toml where it fits)
// for scripts, a non-zero exit and one clear line on any failure.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	berryv1 "github.com/berry-gateway/berry/pkg/api/berry/v1"
	"github.com/berry-gateway/berry/pkg/buildinfo"
	"github.com/berry-gateway/berry/pkg/config"
	"github.com/berry-gateway/berry/pkg/grpccreds"
	"github.com/berry-gateway/berry/pkg/tokenflag"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/resolver"
	"google.golang.org/grpc/resolver/manual"
	"google.golang.org/grpc/status"
)

const usage = `berryctl: manage Berry through its control plane.

Usage: berryctl [global flags] COMMAND [args] [flags]

Commands:
  import FILE                 replace the whole config with a seed-format TOML file
  apply -f FILE               same, from TOML (.toml) or the proto JSON form (.json)
  import|apply --dry-run ...  validate on the control plane and show what would
                              change against the current version; writes nothing
                              (exit 1 with the errors when invalid)
  get providers|models|users|settings [ID]
  export                      print the config as seed-format TOML (secrets redacted
                              unless --include-secrets, admin only)
  versions                    list config versions, newest first
  diff A B                    what changed from version A to version B
  rollback N                  make a new version equal to version N
  keys create [--id ID] [--name N] [--models a,b] [--tags t] [--expires 720h|RFC3339]
              [--rpm N] [--rph N] [--rpd N] [--tpm N] [--tpd N] [--usd-per-day X] [--usd-per-month X]
                              limits for the whole fleet, 0 or absent = unlimited:
                              requests per minute/hour/day (--rpm --rph --rpd),
                              input+output tokens per minute/day (--tpm --tpd), and
                              budgets in USD per day/month, costed at the backends'
                              prices (--usd-per-day --usd-per-month, e.g. 5 or 2.50)
  keys disable ID | keys enable ID
  edges                       fleet status: every edge and the version it applied
  scores [MODEL]              fleet-wide latency/TTFT, samples, contributing edges,
                              error rate (5xx and no answer over all but 4xx), recent
                              attempts by class, health and probe owner per backend
  usage [--key ID] [--model ID] [--since 24h|RFC3339] [--until 0s|RFC3339] [--by key,model,backend,hour]
                              the usage ledger: requests, tokens and cost, one total
                              row or one per group (default: the last 24 hours;
                              -o csv too)
  quotas [--key ID]           each key's fleet limits and budgets: used, outstanding
                              credit and what is left in the current windows
  version [--client]          this berryctl's version and the control plane's
  cluster status              a replicated control plane's members, leader and log
  cluster add ID RAFT_ADDR    add a member (started with --raft-listen, no --peers)
  cluster remove ID           remove a member (any member forwards to the leader)

Global flags (anywhere on the line):
  --server ADDR     control plane address (env BERRY_SERVER, default 127.0.0.1:9090);
                    a cluster's nodes comma-separated (a,b,c): tried in turn until one answers
  --token T         bearer token (env BERRY_TOKEN); visible in the process list
  --token-file F    file holding the bearer token (env BERRY_TOKEN_FILE)
  --tls-ca FILE     verify the server with this CA (enables TLS); --tls-cert/--tls-key for mTLS
  -o FORMAT         table (default), json, yaml; toml for get and export; csv for usage and quotas
  --timeout D       per-call timeout (default 15s)
  --version         print berryctl's version and exit
  -h, --help        this help
Write flags: --message M, --expected-version N (refused if the config moved on).
`

func main() { os.Exit(runMain(os.Args[1:], os.Stdout, os.Stderr)) }

// runMain runs one command line and returns the exit code: 0 for success and for help,
// 1 with one line on stderr for any failure.
func runMain(args []string, stdout, stderr io.Writer) int {
	err := run(args, stdout)
	if errors.Is(err, flag.ErrHelp) {
		fmt.Fprint(stdout, usage)
		return 0
	}
	if err != nil {
		fmt.Fprintln(stderr, "berryctl: "+oneLine(err))
		return 1
	}
	return 0
}

// opts are every flag berryctl knows; each command uses what applies.
type opts struct {
	server, token, tlsCA, tlsCert, tlsKey, output string
	timeout                                       time.Duration
	message                                       string
	expected                                      uint64
	file                                          string
	includeSecrets                                bool
	dryRun, showVersion, clientOnly               bool
	version                                       uint64
	limit                                         uint
	keyID, keyName, models, tags, expires         string
	rpm, rph, rpd                                 uint
	tpm, tpd                                      uint64
	usdPerDay, usdPerMonth                        float64
	usageFlags                                    // usage and quotas (usage.go)
}

func parse(args []string) (*opts, []string, error) {
	o := &opts{}
	// --version alone asks for berryctl's version; followed by a number it is the
	// config version export shows (--version N), as it was before.
	for i, a := range args {
		if a == "--" {
			break
		}
		if (a == "--version" || a == "-version") && (i+1 == len(args) || !isNumber(args[i+1])) {
			o.showVersion = true
			args = slices.Delete(slices.Clone(args), i, i+1)
			break
		}
	}
	fs := flag.NewFlagSet("berryctl", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.StringVar(&o.server, "server", envOr("BERRY_SERVER", "127.0.0.1:9090"), "")
	token := tokenflag.Token{Name: "token", Env: "BERRY_TOKEN", FileEnv: "BERRY_TOKEN_FILE"}
	token.Register(fs, "bearer token")
	fs.StringVar(&o.tlsCA, "tls-ca", "", "")
	fs.StringVar(&o.tlsCert, "tls-cert", "", "")
	fs.StringVar(&o.tlsKey, "tls-key", "", "")
	fs.StringVar(&o.output, "o", "table", "")
	fs.StringVar(&o.output, "output", "table", "")
	fs.DurationVar(&o.timeout, "timeout", 15*time.Second, "")
	fs.StringVar(&o.message, "message", "", "")
	fs.StringVar(&o.message, "m", "", "")
	fs.Uint64Var(&o.expected, "expected-version", 0, "")
	fs.StringVar(&o.file, "f", "", "")
	fs.StringVar(&o.file, "filename", "", "")
	fs.BoolVar(&o.includeSecrets, "include-secrets", false, "")
	fs.BoolVar(&o.dryRun, "dry-run", false, "")
	fs.BoolVar(&o.clientOnly, "client", false, "")
	fs.Uint64Var(&o.version, "version", 0, "")
	fs.UintVar(&o.limit, "limit", 0, "")
	fs.StringVar(&o.keyID, "id", "", "")
	fs.StringVar(&o.keyName, "name", "", "")
	fs.StringVar(&o.models, "models", "", "")
	fs.StringVar(&o.tags, "tags", "", "")
	fs.StringVar(&o.expires, "expires", "", "")
	fs.UintVar(&o.rpm, "rpm", 0, "")
	fs.UintVar(&o.rph, "rph", 0, "")
	fs.UintVar(&o.rpd, "rpd", 0, "")
	fs.Uint64Var(&o.tpm, "tpm", 0, "")
	fs.Uint64Var(&o.tpd, "tpd", 0, "")
	fs.Float64Var(&o.usdPerDay, "usd-per-day", 0, "")
	fs.Float64Var(&o.usdPerMonth, "usd-per-month", 0, "")
	o.usageFlags.register(fs)
	// Flags may come anywhere, kubectl style: parse, take one positional, repeat.
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, nil, err
			}
			return nil, nil, fmt.Errorf("%w (see berryctl --help)", err)
		}
		if fs.NArg() == 0 {
			break
		}
		pos = append(pos, fs.Arg(0))
		args = fs.Args()[1:]
	}
	switch o.output {
	case "table", "json", "yaml", "toml":
	case "csv":
		if err := csvOutput(pos); err != nil {
			return nil, nil, err
		}
	default:
		return nil, nil, fmt.Errorf("-o %q: use table, json, yaml, toml or csv", o.output)
	}
	var err error
	if o.token, err = token.Value(fs); err != nil {
		return nil, nil, err
	}
	return o, pos, nil
}

func isNumber(s string) bool {
	_, err := strconv.ParseUint(s, 10, 64)
	return err == nil
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

func run(args []string, out io.Writer) error {
	o, pos, err := parse(args)
	if err != nil {
		return err
	}
	if o.showVersion {
		_, err := fmt.Fprintln(out, "berryctl", buildinfo.Get())
		return err
	}
	if len(pos) == 0 {
		return errors.New("no command (see berryctl --help)")
	}
	conn, err := dial(o)
	if err != nil {
		return err
	}
	defer conn.Close()
	c := &cli{o: o, admin: berryv1.NewAdminServiceClient(conn), members: berryv1.NewClusterServiceClient(conn), out: out}
	ctx, cancel := context.WithTimeout(context.Background(), o.timeout)
	defer cancel()
	err = c.dispatch(ctx, pos)
	if code := status.Code(err); code == codes.Unavailable || code == codes.DeadlineExceeded || errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("cannot reach the control plane at %s: %s", o.server, status.Convert(err).Message())
	}
	return err
}

func dial(o *opts) (*grpc.ClientConn, error) {
	servers, err := serverList(o.server)
	if err != nil {
		return nil, fmt.Errorf("--server %s: %w", o.server, err)
	}
	creds := grpccreds.Client{Token: o.token, CA: o.tlsCA, Cert: o.tlsCert, Key: o.tlsKey}
	dopts, err := creds.DialOptions()
	if err != nil {
		return nil, err
	}
	dopts = append(dopts, grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(64<<20)))
	target := servers[0]
	if len(servers) > 1 {
		// Every address is given to gRPC's pick_first, which connects to them in turn
		// until one answers; a call waits for that and is sent once, so a write is
		// never sent twice. A single name with several DNS records gets the same from
		// gRPC's own resolver.
		addrs := make([]resolver.Address, len(servers))
		for i, a := range servers {
			addrs[i] = resolver.Address{Addr: a, ServerName: a} // TLS checks each node's own name
		}
		r := manual.NewBuilderWithScheme("berryctl")
		r.InitialState(resolver.State{Addresses: addrs})
		dopts = append(dopts, grpc.WithResolvers(r))
		target = r.Scheme() + ":///control-plane"
	}
	conn, err := grpc.NewClient(target, dopts...)
	if err != nil {
		return nil, fmt.Errorf("--server %s: %w", o.server, err)
	}
	return conn, nil
}

// serverList reads --server (or BERRY_SERVER): one address, or several separated by
// commas (the nodes of a cluster), each host:port.
func serverList(s string) ([]string, error) {
	if !strings.Contains(s, ",") {
		if strings.TrimSpace(s) == "" {
			return nil, errors.New("no address")
		}
		return []string{strings.TrimSpace(s)}, nil
	}
	var out []string
	for i, a := range strings.Split(s, ",") {
		a = strings.TrimSpace(a)
		if a == "" {
			return nil, fmt.Errorf("address %d is empty", i+1)
		}
		if host, port, err := net.SplitHostPort(a); err != nil || host == "" || port == "" {
			return nil, fmt.Errorf("address %q: want host:port", a)
		}
		if slices.Contains(out, a) {
			return nil, fmt.Errorf("address %q is listed twice", a)
		}
		out = append(out, a)
	}
	return out, nil
}

// oneLine turns any error into the one line berryctl prints, saying what kind of
// failure it is so that people and scripts can tell them apart.
func oneLine(err error) string {
	st, ok := status.FromError(err)
	if !ok {
		return config.OneLine(err.Error())
	}
	msg := config.OneLine(st.Message())
	switch st.Code() {
	case codes.Unauthenticated:
		return "authentication failed: " + msg + " (check --token, --token-file, BERRY_TOKEN or BERRY_TOKEN_FILE)"
	case codes.PermissionDenied:
		return "permission denied: " + msg
	case codes.InvalidArgument:
		return "rejected: " + msg
	case codes.FailedPrecondition:
		return "stale write refused: " + msg + "; re-read and retry"
	case codes.NotFound:
		return "not found: " + msg
	case codes.AlreadyExists:
		return "already exists: " + msg
	}
	return st.Code().String() + ": " + msg
}
