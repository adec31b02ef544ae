// Package cpsync keeps an edge in step with the control plane: it holds the edge's Sync
// stream open, applies each snapshot it receives, answers ACK or NACK, and reconnects
// with capped exponential backoff and jitter when the stream breaks — to the next of
// the control plane's addresses when it has several (the nodes of a cluster).
package cpsync

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/berry-gateway/berry/edge/internal/meter"
	"github.com/berry-gateway/berry/edge/internal/quota"
	berryv1 "github.com/berry-gateway/berry/pkg/api/berry/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Runtime is what the edge serves from (serving.Runtime): Apply installs a snapshot
// or explains why it cannot; Applied and AppliedHash describe the snapshot being
// served (0, "" and nil for none).
type Runtime interface {
	Apply(*berryv1.Snapshot) error
	Applied() (version uint64, lineage string)
	AppliedHash() []byte
}

// Metering is the edge's usage meter and key credit (serving.Runtime).
type Metering interface {
	Meter() *meter.Meter
	Quota() *quota.Ledger
}

// Saver keeps accepted snapshots across restarts (snapfile.File): Save writes one;
// Touch records that the saved one was still current at t.
type Saver interface {
	Save(*berryv1.Snapshot) error
	Touch(t time.Time) error
}

// ErrOlder is returned for a snapshot older than the one being served. Such a
// snapshot comes from a control-plane node that lags behind the one the edge had it
// from: it is neither applied nor NACKed.
var ErrOlder = errors.New("snapshot is older than the applied version")

// errBehind ends a stream to a node that stayed behind the edge's version for
// LagWait.
var errBehind = errors.New("control plane stayed behind the version this edge serves")

// errHandshake ends an attempt whose stream was not accepted within HandshakeTimeout.
var errHandshake = errors.New("control plane did not accept the stream in time")

// Client syncs one edge. Fields must be set before Run.
type Client struct {
	// Targets are the control plane's addresses; each attempt opens a connection with
	// Dial to one of them, the next one after a failure. Conn, when set instead, is
	// one connection used for every attempt.
	Targets Targets
	Dial    func(Target) (*grpc.ClientConn, error)
	Conn    grpc.ClientConnInterface

	EdgeID        string
	BuildVersion  string
	ListenAddress string
	Runtime       Runtime
	// Disk, when set, receives every snapshot the edge ACKs; a failure to save is
	// logged and the snapshot is still served and ACKed.
	Disk Saver
	Log  *slog.Logger

	// Backoff bounds; defaults 500ms and 30s.
	MinBackoff, MaxBackoff time.Duration
	// HandshakeTimeout bounds opening a stream until the control plane accepts it
	// (default 10s): a node that does not answer is left for the next one.
	HandshakeTimeout time.Duration
	// LagWait is how long the edge stays on a node whose snapshot is older than the
	// one it serves (a lagging follower) waiting for it to catch up, before it moves to
	// the next address (default 10s).
	LagWait time.Duration

	// Fleet, when set, reports this edge's backend observations every ReportInterval
	// (default 1s) and receives the fleet's merged scores, valid for ScoreTTL (default:
	// what the control plane says, else 5 report intervals) and dropped when the stream
	// ends.
	Fleet          Fleet
	ReportInterval time.Duration
	ScoreTTL       time.Duration
	// Metering, when set, adds the usage and the quota accounting of the keys to the
	// batches Fleet's observations go in, and receives the control plane's quota
	// grants.
	Metering Metering

	// MaxSnapshotAge, when set, is how long the edge may serve a snapshot the control
	// plane has not confirmed as current (it is not connected) before it refuses
	// requests: a cut-off edge would otherwise keep revoked keys working forever.
	// SnapshotConfirmed is when the snapshot served at start was last known current
	// (its file's time).
	MaxSnapshotAge    time.Duration
	SnapshotConfirmed time.Time

	connected     atomic.Bool
	address       atomic.Pointer[string] // the address the stream is on, while connected
	last          string                 // the address of the last attempt (Run's goroutine only)
	seed          uint64                 // this edge's order of the addresses
	confirmed     atomic.Int64           // unix nanoseconds: when the stream was last up
	mergedBatches atomic.Uint64
	scoreMu       sync.Mutex
	scoreInstance string
	scoreEpoch    uint64
}

// Connected reports whether the stream to the control plane is up (for /readyz).
func (c *Client) Connected() bool { return c.connected.Load() }

// Address is the control-plane address the stream is on, "" while not connected.
func (c *Client) Address() string {
	if p := c.address.Load(); p != nil && c.connected.Load() {
		return *p
	}
	return ""
}

// Stale reports whether the served snapshot has gone without the control plane's
// confirmation for longer than MaxSnapshotAge: requests are then refused.
func (c *Client) Stale() bool {
	if c.MaxSnapshotAge <= 0 || c.connected.Load() {
		return false
	}
	age, known := c.unconfirmedFor(time.Now())
	return known && age > c.MaxSnapshotAge
}

// unconfirmedFor is how long the served snapshot has gone unconfirmed at now.
func (c *Client) unconfirmedFor(now time.Time) (time.Duration, bool) {
	at := c.confirmed.Load()
	if at == 0 {
		if c.SnapshotConfirmed.IsZero() {
			return 0, false
		}
		at = c.SnapshotConfirmed.UnixNano()
	}
	return now.Sub(time.Unix(0, at)), true
}

// MergedBatches counts observation batches merged into a later one because the
// stream was slow (for /metrics).
func (c *Client) MergedBatches() uint64 { return c.mergedBatches.Load() }

// Run syncs until ctx is done.
func (c *Client) Run(ctx context.Context) error {
	log := c.Log
	if log == nil {
		log = slog.Default()
	}
	minB, maxB := c.MinBackoff, c.MaxBackoff
	if minB <= 0 {
		minB = 500 * time.Millisecond
	}
	if maxB <= 0 {
		maxB = 30 * time.Second
	}
	backoff := minB
	c.seed = rand.Uint64()
	for {
		start := time.Now()
		err := c.attempt(ctx, log)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		// A stream that lived a while was healthy: start the backoff over.
		if time.Since(start) > maxB {
			backoff = minB
		}
		wait := jittered(backoff, minB)
		attrs := []any{"err", err, "in", wait.Round(time.Millisecond)}
		if v, _ := c.Runtime.Applied(); v != 0 {
			if age, known := c.unconfirmedFor(time.Now()); known {
				attrs = append(attrs, "serving_version", v, "unconfirmed_for", age.Round(time.Second))
			}
		}
		if c.Stale() {
			log.Error("control plane unreachable for longer than --max-snapshot-age; refusing requests until it answers", attrs...)
		} else {
			log.Warn("control plane stream ended; reconnecting; serving the last snapshot meanwhile", attrs...)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(wait):
		}
		backoff = min(backoff*2, maxB)
	}
}

// keepConfirming records on disk, while the stream is up, that the saved snapshot is
// current, so that an edge restarted while the control plane is away knows how old
// its snapshot is.
func (c *Client) keepConfirming(ctx context.Context) {
	t := time.NewTicker(min(c.MaxSnapshotAge/4, time.Minute))
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			c.touch()
		}
	}
}

func (c *Client) touch() {
	if c.Disk == nil || c.MaxSnapshotAge <= 0 {
		return
	}
	if v, _ := c.Runtime.Applied(); v != 0 {
		_ = c.Disk.Touch(time.Now())
	}
}

// jittered is the wait before the next attempt: uniform in [minB/2, backoff+minB/2).
// Full jitter keeps a fleet from reconnecting in lockstep after a control-plane
// restart; the floor keeps a broken control plane from being hammered.
func jittered(backoff, minB time.Duration) time.Duration {
	return time.Duration(rand.Int64N(int64(backoff))) + minB/2
}

// attempt runs one session, on Conn or on a connection to the next target.
func (c *Client) attempt(ctx context.Context, log *slog.Logger) error {
	if c.Conn != nil {
		return c.session(ctx, c.Conn, false, log)
	}
	rctx, cancel := context.WithTimeout(ctx, c.handshakeTimeout())
	targets, err := c.Targets.Resolve(rctx)
	cancel()
	if err != nil {
		return err
	}
	if len(targets) == 0 {
		return errors.New("no control-plane address to connect to")
	}
	t := next(targets, c.last, c.seed)
	c.last = t.Addr
	c.address.Store(&t.Addr)
	conn, err := c.Dial(t)
	if err != nil {
		return fmt.Errorf("%s: %w", t.Addr, err)
	}
	defer conn.Close()
	if err := c.session(ctx, conn, len(targets) > 1, log.With("control_plane", t.Addr)); err != nil {
		return fmt.Errorf("%s: %w", t.Addr, err)
	}
	return nil
}

func (c *Client) handshakeTimeout() time.Duration {
	if c.HandshakeTimeout > 0 {
		return c.HandshakeTimeout
	}
	return 10 * time.Second
}

func (c *Client) lagWait() time.Duration {
	if c.LagWait > 0 {
		return c.LagWait
	}
	return 10 * time.Second
}

// session runs one stream on conn. With alternatives (other addresses to try), a node
// that stays behind the version served for LagWait is left; without, the edge waits
// on it for as long as it takes.
func (c *Client) session(ctx context.Context, conn grpc.ClientConnInterface, alternatives bool, log *slog.Logger) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	handshake := time.AfterFunc(c.handshakeTimeout(), func() { cancel(errHandshake) })
	stream, err := berryv1.NewEdgeServiceClient(conn).Sync(ctx)
	if err != nil {
		handshake.Stop()
		return fmt.Errorf("open stream: %w", cause(ctx, err))
	}
	applied, lineage := c.Runtime.Applied()
	hello := &berryv1.Hello{
		EdgeId: c.EdgeID, BuildVersion: c.BuildVersion, ListenAddress: c.ListenAddress,
		AppliedVersion: applied, AppliedLineage: lineage, AppliedHash: c.Runtime.AppliedHash(),
	}
	if err := stream.Send(&berryv1.SyncRequest{Kind: &berryv1.SyncRequest_Hello{Hello: hello}}); err != nil {
		return fmt.Errorf("send hello: %w", err)
	}
	// The control plane sends headers once it has accepted the hello (and the token):
	// only then is the edge connected, even when no snapshot follows because it is
	// up to date.
	if _, err := stream.Header(); err != nil {
		handshake.Stop()
		return fmt.Errorf("handshake: %w", cause(ctx, err))
	}
	if !handshake.Stop() {
		return fmt.Errorf("handshake: %w", errHandshake)
	}
	c.connected.Store(true)
	c.confirmed.Store(time.Now().UnixNano())
	if c.Metering != nil {
		c.Metering.Quota().Connected(time.Now())
	}
	defer func() {
		c.confirmed.Store(time.Now().UnixNano())
		c.connected.Store(false)
		c.touch()
	}()
	log.Info("connected to control plane", "applied_version", hello.AppliedVersion)
	if c.MaxSnapshotAge > 0 && c.Disk != nil {
		go c.keepConfirming(ctx)
	}
	out := &lockedSend{send: stream.Send}
	reportErr := make(chan error, 1)
	if c.Fleet != nil {
		defer c.Fleet.ClearFleet() // local estimates and probing until reconnected
		c.Fleet.AwaitProbeAssignment(time.Now().Add(c.scoreTTL()))
		go func() {
			reportErr <- c.report(ctx, func(b *berryv1.ObservationBatch) error {
				return out.Send(&berryv1.SyncRequest{Kind: &berryv1.SyncRequest_Observations{Observations: b}})
			})
		}()
	}
	// behind, while set, moves to the next address unless this node catches up.
	var behind *time.Timer
	defer func() {
		if behind != nil {
			behind.Stop()
		}
	}()
	for {
		select {
		case err := <-reportErr:
			return fmt.Errorf("send observations: %w", err)
		default:
		}
		msg, err := stream.Recv()
		if err != nil {
			if errors.Is(context.Cause(ctx), errBehind) {
				return errBehind
			}
			if errors.Is(err, io.EOF) || status.Code(err) == codes.Canceled {
				return fmt.Errorf("stream closed: %w", err)
			}
			return fmt.Errorf("receive: %w", err)
		}
		if sc := msg.GetScores(); sc != nil {
			c.applyScores(sc)
			continue
		}
		if g := msg.GetGrants(); g != nil {
			if c.Metering != nil {
				c.Metering.Quota().Apply(g, time.Now())
			}
			continue
		}
		snap := msg.GetSnapshot()
		if snap == nil {
			continue // a kind this build does not know yet
		}
		ack := &berryv1.SnapshotAck{Version: snap.GetVersion(), Accepted: true}
		err = c.apply(snap)
		if errors.Is(err, ErrOlder) {
			// A node behind the one this edge had its version from (a follower still
			// catching up): nothing to apply and nothing wrong with the snapshot. Wait
			// for the node to send the version again, or move on.
			serving, _ := c.Runtime.Applied()
			switch {
			case !alternatives:
				log.Warn("control plane is behind the version this edge serves; waiting for it to catch up",
					"its_version", snap.GetVersion(), "serving", serving)
			case behind == nil:
				log.Warn("control plane is behind the version this edge serves; waiting for it to catch up, then trying another address",
					"its_version", snap.GetVersion(), "serving", serving, "wait", c.lagWait())
				behind = time.AfterFunc(c.lagWait(), func() { cancel(errBehind) })
			}
			continue
		}
		if behind != nil {
			behind.Stop()
			behind = nil
		}
		if err != nil {
			ack.Accepted, ack.ErrorDetail = false, err.Error()
			serving, _ := c.Runtime.Applied()
			log.Error("snapshot rejected; still serving the previous one",
				"version", snap.GetVersion(), "serving", serving, "err", err)
		} else {
			log.Info("snapshot applied", "version", snap.GetVersion())
			if c.Disk != nil {
				if err := c.Disk.Save(snap); err != nil {
					log.Error("could not cache the snapshot; a restart without the control plane would serve an older one", "version", snap.GetVersion(), "err", err)
				}
			}
		}
		if err := out.Send(&berryv1.SyncRequest{Kind: &berryv1.SyncRequest_Ack{Ack: ack}}); err != nil {
			return fmt.Errorf("send ack: %w", err)
		}
	}
}

func (c *Client) apply(s *berryv1.Snapshot) error {
	cur, l := c.Runtime.Applied()
	// Version numbers compare only within one lineage (one control-plane data file);
	// a snapshot from another lineage (a new or restored control plane) replaces what
	// the edge serves, and the control plane is the authority on what is current.
	if cur != 0 && l != "" && s.GetLineage() != "" && l != s.GetLineage() {
		return c.Runtime.Apply(s)
	}
	switch {
	case s.GetVersion() < cur:
		return fmt.Errorf("%w (got %d, serving %d)", ErrOlder, s.GetVersion(), cur)
	case s.GetVersion() == cur:
		// The same version is the same config, unless its content says otherwise (the
		// control plane's file was put back by other means than restore).
		if h := s.GetContentHash(); len(h) == 0 || bytes.Equal(h, c.Runtime.AppliedHash()) {
			return nil
		}
	}
	return c.Runtime.Apply(s)
}

// cause is the reason ctx was cancelled with, when it was, else err.
func cause(ctx context.Context, err error) error {
	if c := context.Cause(ctx); c != nil && !errors.Is(c, context.Canceled) {
		return c
	}
	return err
}
