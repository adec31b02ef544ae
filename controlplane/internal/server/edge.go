package server

import (
	"errors"
	"io"

	"github.com/berry-gateway/berry/controlplane/internal/fleet"
	berryv1 "github.com/berry-gateway/berry/pkg/api/berry/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
)

// Sync implements berryv1.EdgeServiceServer: it sends the current snapshot, then every
// newer one, while a reader goroutine records the edge's ACKs and NACKs.
func (s *Server) Sync(stream grpc.BidiStreamingServer[berryv1.SyncRequest, berryv1.SyncResponse]) error {
	ctx := stream.Context()
	first, err := stream.Recv()
	if err != nil {
		return err
	}
	hello := first.GetHello()
	if hello == nil || hello.GetEdgeId() == "" {
		return status.Error(codes.InvalidArgument, "the first message on a Sync stream must be a Hello with an edge_id")
	}
	// Headers tell the edge its hello was accepted, before any snapshot (there may be
	// none when it is up to date).
	if err := stream.SendHeader(metadata.Pairs("berry-lineage", s.store.Lineage())); err != nil {
		return err
	}
	id := hello.GetEdgeId()
	e := fleet.Edge{
		ID: id, Address: hello.GetListenAddress(), BuildVersion: hello.GetBuildVersion(),
		AppliedVersion: hello.GetAppliedVersion(),
	}
	if p, ok := peer.FromContext(ctx); ok && p.Addr != nil {
		e.Peer = p.Addr.String()
	}
	disconnect := s.fleet.Connect(e)
	defer disconnect()
	s.startScores()
	// Its observations leave the fleet scores with it (a quiet edge's also expire).
	defer s.scores.streamOpened(id)()
	log := s.log.With("edge", id, "peer", e.Peer)
	log.Info("edge connected", "applied_version", e.AppliedVersion, "build", e.BuildVersion)
	defer log.Info("edge disconnected")

	recvErr := make(chan error, 1)
	go func() {
		for {
			msg, err := stream.Recv()
			if err != nil {
				recvErr <- err
				return
			}
			switch k := msg.GetKind().(type) {
			case *berryv1.SyncRequest_Observations:
				s.observe(id, k.Observations)
			case *berryv1.SyncRequest_Ack:
				a := k.Ack
				s.fleet.Ack(id, a.GetVersion(), a.GetAccepted(), a.GetErrorDetail())
				if a.GetAccepted() {
					log.Debug("snapshot ACK", "version", a.GetVersion())
				} else {
					log.Warn("snapshot NACK", "version", a.GetVersion(), "reason", a.GetErrorDetail())
				}
			default:
				log.Warn("unexpected message on Sync stream", "type", k)
			}
		}
	}()

	// Versions compare only within one lineage: an edge holding a snapshot from
	// another data file (or one restored from backup) gets the current one whatever
	// the numbers say.
	sent := hello.GetAppliedVersion()
	if hello.GetAppliedLineage() != s.store.Lineage() {
		sent = 0
	}
	var sentEpoch uint64
	for {
		snap, changed := s.cache.Watch()
		if snap != nil && snap.GetVersion() > sent {
			if err := stream.Send(&berryv1.SyncResponse{Kind: &berryv1.SyncResponse_Snapshot{Snapshot: snap}}); err != nil {
				return err
			}
			sent = snap.GetVersion()
		}
		scores, scoresChanged := s.scores.watch()
		if scores != nil && scores.GetEpoch() > sentEpoch {
			if err := stream.Send(&berryv1.SyncResponse{Kind: &berryv1.SyncResponse_Scores{Scores: scores}}); err != nil {
				return err
			}
			sentEpoch = scores.GetEpoch()
		}
		select {
		case <-changed:
		case <-scoresChanged:
		case err := <-recvErr:
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		case <-s.done:
			return status.Error(codes.Unavailable, "control plane shutting down")
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}
