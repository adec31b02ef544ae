package server

import (
	"bytes"
	"errors"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"

	"github.com/berry-gateway/berry/controlplane/internal/cache"
	"github.com/berry-gateway/berry/controlplane/internal/fleet"
	berryv1 "github.com/berry-gateway/berry/pkg/api/berry/v1"
	"github.com/berry-gateway/berry/pkg/config"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
)

// EdgeCallbacks is told what edges do on their Sync streams beyond snapshot ACKs.
type EdgeCallbacks interface {
	// StreamOpened is called when an edge's stream is accepted; closed is called when
	// it ends. One edge may have overlapping streams while it reconnects.
	StreamOpened(edgeID string) (closed func())
	// Observed is called with every observation batch an edge sends, on the stream's
	// receiving goroutine: it must not block.
	Observed(edgeID string, b *berryv1.ObservationBatch)
}

// EdgeService implements berryv1.EdgeServiceServer: one Sync stream per edge, down
// which go the current snapshot and every newer one, and the fleet scores; up come
// the edge's ACKs and NACKs (recorded in the fleet registry) and its observations
// (handed to the callbacks).
type EdgeService struct {
	lineage   func() string // the store's: a cluster member's is set by the log
	snapshots *cache.Snapshots
	scores    *cache.Scores
	fleet     *fleet.Registry
	callbacks EdgeCallbacks
	// quotas, when set, takes each stream's usage and quota reports and gives the
	// grants to send down it.
	quotas QuotaStreams
	log    *slog.Logger

	done     chan struct{}
	doneOnce sync.Once
	refusal  string // why streams end when done is closed (set before)
	// replicated: this control plane is a cluster member, whose applied state may
	// lag the edge's.
	replicated bool

	// Counters for the metrics collector.
	snapshotsSent, scoresSent, acks atomic.Uint64
	grantsSent                      atomic.Uint64
	nacks                           [numNackReasons]atomic.Uint64

	berryv1.UnimplementedEdgeServiceServer
}

// NewEdgeService returns the edge service for a store of the given lineage, streaming
// what snapshots and scores hold, recording edges in edges and telling callbacks (which
// may be nil) of streams and observations.
func NewEdgeService(lineage func() string, snapshots *cache.Snapshots, scores *cache.Scores, edges *fleet.Registry, callbacks EdgeCallbacks, log *slog.Logger) *EdgeService {
	if log == nil {
		log = slog.Default()
	}
	return &EdgeService{
		lineage: lineage, snapshots: snapshots, scores: scores, fleet: edges, callbacks: callbacks, log: log,
		done: make(chan struct{}),
	}
}

// Shutdown ends every Sync stream with Unavailable, now and from now on, so that a
// graceful gRPC stop can finish; edges reconnect elsewhere or later.
func (e *EdgeService) Shutdown() { e.refuse("control plane shutting down") }

// refuse ends every Sync stream with Unavailable and the reason, now and from now on.
func (e *EdgeService) refuse(reason string) {
	e.doneOnce.Do(func() {
		e.refusal = reason
		close(e.done)
	})
}

// holdsCurrent reports whether what an edge of this lineage says it serves is this data
// file's: a version this file has reached, with the same content when it is the
// current one (hashes are compared when both sides have one).
func (e *EdgeService) holdsCurrent(hello *berryv1.Hello, log *slog.Logger) bool {
	cur, _ := e.snapshots.Watch()
	v := hello.GetAppliedVersion()
	switch {
	case cur == nil:
		return true
	case v > cur.GetVersion() && e.replicated:
		// Normal on a cluster: the edge got it from a member ahead of this one.
		log.Info("edge holds a version this member has not applied yet (it lags the leader, or is cut off from it); sending this member's snapshot, which the edge does not apply: it waits for a newer one or moves to another member",
			"edge_version", v, "current", cur.GetVersion())
		return false
	case v > cur.GetVersion():
		log.Warn("edge holds a version this data file has not reached: was the file put back outside berry-controlplane restore? sending the current snapshot",
			"edge_version", v, "current", cur.GetVersion())
		return false
	case v == cur.GetVersion() && len(hello.GetAppliedHash()) > 0 && len(cur.GetContentHash()) > 0 &&
		!bytes.Equal(hello.GetAppliedHash(), cur.GetContentHash()):
		log.Warn("edge holds the current version number with other content; sending the current snapshot", "version", v)
		return false
	}
	return true
}

// Sync implements berryv1.EdgeServiceServer: it sends the current snapshot, then every
// newer one, while a reader goroutine records the edge's ACKs and NACKs.
func (e *EdgeService) Sync(stream grpc.BidiStreamingServer[berryv1.SyncRequest, berryv1.SyncResponse]) error {
	ctx := stream.Context()
	first, err := stream.Recv()
	if err != nil {
		return err
	}
	hello := first.GetHello()
	if hello == nil || hello.GetEdgeId() == "" {
		return status.Error(codes.InvalidArgument, "the first message on a Sync stream must be a Hello with an edge_id")
	}
	select {
	case <-e.done:
		return status.Error(codes.Unavailable, e.refusal)
	default:
	}
	lineage := e.lineage()
	// Headers tell the edge its hello was accepted, before any snapshot (there may be
	// none when it is up to date).
	if err := stream.SendHeader(metadata.Pairs("berry-lineage", lineage)); err != nil {
		return err
	}
	id := hello.GetEdgeId()
	edge := fleet.Edge{ID: id, Address: hello.GetListenAddress(), BuildVersion: hello.GetBuildVersion()}
	if p, ok := peer.FromContext(ctx); ok && p.Addr != nil {
		edge.Peer = p.Addr.String()
	}
	log := e.log.With("edge", id, "peer", edge.Peer)
	// Versions compare only within one lineage: an edge holding a snapshot from
	// another data file (or one restored from backup) has applied none of this one's,
	// and gets the current snapshot whatever the numbers say. One holding a version of
	// this lineage ACKed it on an earlier stream — unless that version's content is not
	// this file's (the file was put back by other means than restore: the same number
	// with other content, or a number this file has not reached). Such an edge is sent
	// the current snapshot too, and applies it or says why not.
	if hello.GetAppliedLineage() == lineage && e.holdsCurrent(hello, log) {
		edge.AppliedVersion, edge.LastAckVersion = hello.GetAppliedVersion(), hello.GetAppliedVersion()
	}
	disconnect := e.fleet.Connect(edge)
	defer disconnect()
	if e.callbacks != nil {
		defer e.callbacks.StreamOpened(id)()
	}
	var quotas QuotaStream
	var grantsReady <-chan struct{} // nil without quotas: never ready
	if e.quotas != nil {
		quotas = e.quotas.OpenStream(id)
		defer quotas.Close()
		grantsReady = quotas.Ready()
	}
	log.Info("edge connected", "applied_version", edge.AppliedVersion, "build", edge.BuildVersion)
	defer log.Info("edge disconnected")

	recvErr := make(chan error, 1)
	go func() {
		for {
			msg, err := stream.Recv()
			if err != nil {
				recvErr <- err
				return
			}
			e.fleet.Seen(id)
			switch k := msg.GetKind().(type) {
			case *berryv1.SyncRequest_Observations:
				if e.callbacks != nil {
					e.callbacks.Observed(id, k.Observations)
				}
				if quotas != nil {
					quotas.Observed(k.Observations)
				}
			case *berryv1.SyncRequest_Ack:
				a := k.Ack
				// A reason may span lines (a validation error lists one problem a line);
				// fleet status shows it in a table row and the log on one line.
				detail := config.OneLine(a.GetErrorDetail())
				e.fleet.Ack(id, a.GetVersion(), a.GetAccepted(), detail)
				if a.GetAccepted() {
					e.acks.Add(1)
					log.Debug("snapshot ACK", "version", a.GetVersion())
				} else {
					e.nacks[nackReason(detail)].Add(1)
					log.Warn("snapshot NACK", "version", a.GetVersion(), "reason", detail)
				}
			default:
				log.Warn("unexpected message on Sync stream", "type", k)
			}
		}
	}()

	sent := edge.AppliedVersion
	var sentScores *berryv1.FleetScores // the cache orders them (instances and epochs)
	for {
		snap, changed := e.snapshots.Watch()
		if snap != nil && snap.GetVersion() > sent {
			if err := stream.Send(&berryv1.SyncResponse{Kind: &berryv1.SyncResponse_Snapshot{Snapshot: snap}}); err != nil {
				return err
			}
			e.snapshotsSent.Add(1)
			sent = snap.GetVersion()
		}
		scores, scoresChanged := e.scores.Watch()
		if scores != nil && scores != sentScores {
			if err := stream.Send(&berryv1.SyncResponse{Kind: &berryv1.SyncResponse_Scores{Scores: scores}}); err != nil {
				return err
			}
			e.scoresSent.Add(1)
			sentScores = scores
		}
		select {
		case <-changed:
		case <-scoresChanged:
		case <-grantsReady:
			g := quotas.Take()
			if g == nil {
				continue // a follower's edge: its grants come from the leader
			}
			if err := stream.Send(&berryv1.SyncResponse{Kind: &berryv1.SyncResponse_Grants{Grants: g}}); err != nil {
				return err
			}
			e.grantsSent.Add(1)
		case err := <-recvErr:
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		case <-e.done:
			return status.Error(codes.Unavailable, e.refusal)
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}
