package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"time"

	"github.com/berry-gateway/berry/edge/internal/cpsync"
	"github.com/berry-gateway/berry/edge/internal/serving"
	"github.com/berry-gateway/berry/edge/internal/snapfile"
	"github.com/berry-gateway/berry/edge/internal/standalone"
	"github.com/berry-gateway/berry/pkg/buildinfo"
	"github.com/berry-gateway/berry/pkg/grpccreds"
	"github.com/berry-gateway/berry/pkg/tokenflag"
	"google.golang.org/grpc"
	"google.golang.org/grpc/keepalive"
)

// sourceFlags say where the edge's config comes from: a control plane (with its
// token, TLS and the local snapshot file) or a local TOML file.
type sourceFlags struct {
	cpAddr, token, cacheDir, configPath   string
	tokenFlag                             tokenflag.Token
	tlsCA, tlsCert, tlsKey, tlsServerName string
	// reportInterval is how often observations go to the control plane.
	reportInterval time.Duration
	// maxSnapshotAge bounds how long a snapshot serves without the control plane.
	maxSnapshotAge time.Duration
}

// register adds the flags; cpAddr is --control-plane, which main already defines.
func (f *sourceFlags) register(fs *flag.FlagSet) {
	f.tokenFlag = tokenflag.Token{Name: "token", Env: "BERRY_EDGE_TOKEN", FileEnv: "BERRY_EDGE_TOKEN_FILE"}
	f.tokenFlag.Register(fs, "edge token for the control plane")
	fs.StringVar(&f.cacheDir, "cache-dir", "", "directory of the snapshot files, one per edge id (default <user cache dir>/berry/edges)")
	fs.StringVar(&f.configPath, "config", os.Getenv("CONFIG_PATH"), "standalone mode: serve this seed-format TOML file, hot-reloaded, with no control plane (env CONFIG_PATH)")
	fs.StringVar(&f.tlsCA, "tls-ca", "", "CA bundle (PEM) to verify the control plane; enables TLS")
	fs.StringVar(&f.tlsCert, "tls-cert", "", "client certificate (PEM) for mTLS to the control plane")
	fs.StringVar(&f.tlsKey, "tls-key", "", "client key (PEM) for mTLS to the control plane")
	fs.StringVar(&f.tlsServerName, "tls-server-name", "", "expected name in the control plane's certificate (default: the host of the --control-plane address dialled)")
	fs.DurationVar(&f.reportInterval, "report-interval", 0, "how often backend observations are reported to the control plane for fleet scores (default 1s)")
	fs.DurationVar(&f.maxSnapshotAge, "max-snapshot-age", 0, "refuse requests once the control plane has been unreachable this long (0: serve the last snapshot for ever)")
}

// source is what keeps the runtime's config current.
type source struct {
	// controlPlane is nil in standalone mode.
	controlPlane *cpsync.Client
	stop         func()
}

// startSource installs the first config (from the snapshot file or the config file)
// into rt and starts what keeps it current.
func startSource(ctx context.Context, f sourceFlags, edgeID, listenAddr string, rt *serving.Runtime, log *slog.Logger) (source, error) {
	switch {
	case f.cpAddr != "" && f.configPath != "":
		return source{}, errors.New("give --control-plane or --config (standalone), not both")
	case f.cpAddr == "" && f.configPath == "":
		return source{}, errors.New("--control-plane (or --config for standalone mode) is required")
	case f.configPath != "":
		rt.Quota().SetStandalone(true) // one edge is the whole fleet: its limits are its own
		w := &standalone.Watcher{Path: f.configPath, Runtime: rt, Log: log.With("component", "standalone")}
		if err := w.Load(); err != nil {
			return source{}, err
		}
		go func() { _ = w.Run(ctx) }()
		return source{stop: func() {}}, nil
	}

	targets, err := cpsync.ParseTargets(f.cpAddr)
	if err != nil {
		return source{}, fmt.Errorf("--control-plane: %w", err)
	}
	cachePath, err := snapfile.DefaultPath(f.cacheDir, edgeID)
	if err != nil {
		return source{}, fmt.Errorf("--cache-dir: %w", err)
	}
	disk := snapfile.File{Path: cachePath}
	var confirmed time.Time
	// Serve the cached snapshot at once: the control plane may be away for a while,
	// and when it is back it sends anything newer.
	switch snap, err := disk.Load(); {
	case err != nil:
		log.Warn("snapshot file unusable; waiting for the control plane", "path", cachePath, "err", err)
	case snap != nil:
		if err := rt.Apply(snap); err != nil {
			log.Warn("cached snapshot rejected; waiting for the control plane", "path", cachePath, "err", err)
		} else {
			confirmed, _ = disk.Saved()
			log.Info("serving cached snapshot until the control plane answers", "version", snap.GetVersion(), "path", cachePath,
				"last_confirmed", confirmed.Format(time.RFC3339))
		}
	}

	creds := grpccreds.Client{Token: f.token, CA: f.tlsCA, Cert: f.tlsCert, Key: f.tlsKey, ServerName: f.tlsServerName}
	opts, err := creds.DialOptions()
	if err != nil {
		return source{}, err
	}
	opts = append(opts,
		grpc.WithKeepaliveParams(keepalive.ClientParameters{Time: 30 * time.Second, Timeout: 10 * time.Second}),
		// Snapshots of large configs exceed gRPC's 4 MiB default.
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(64<<20)),
	)
	dial := func(t cpsync.Target) (*grpc.ClientConn, error) {
		o := opts
		if t.Authority != "" {
			// Dialled by the address a name resolved to; TLS checks the name.
			o = append(slices.Clip(opts), grpc.WithAuthority(t.Authority))
		}
		return grpc.NewClient(t.Addr, o...)
	}
	sync := &cpsync.Client{
		Targets: targets, Dial: dial, EdgeID: edgeID, BuildVersion: buildinfo.Get().Version, ListenAddress: listenAddr,
		Runtime: rt, Fleet: rt, Metering: rt, Disk: disk, ReportInterval: f.reportInterval,
		MaxSnapshotAge: f.maxSnapshotAge, SnapshotConfirmed: confirmed,
		Log: log.With("component", "cpsync"),
	}
	go func() { _ = sync.Run(ctx) }()
	return source{controlPlane: sync, stop: func() {}}, nil
}
