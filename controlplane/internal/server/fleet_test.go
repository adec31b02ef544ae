package server

import (
	"bytes"
	"context"
	"testing"
	"time"

	berryv1 "github.com/berry-gateway/berry/pkg/api/berry/v1"
)

// openSync opens an edge's Sync stream with a Hello and waits for its headers (the
// hello was accepted); cancel ends the stream.
func openSync(t *testing.T, h *harness, hello *berryv1.Hello) (stream berryv1.EdgeService_SyncClient, cancel func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(ctxT(t))
	t.Cleanup(cancel)
	stream, err := berryv1.NewEdgeServiceClient(h.conn(t, edgeTok)).Sync(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := stream.Send(&berryv1.SyncRequest{Kind: &berryv1.SyncRequest_Hello{Hello: hello}}); err != nil {
		t.Fatal(err)
	}
	if _, err := stream.Header(); err != nil {
		t.Fatal(err)
	}
	return stream, cancel
}

// waitFleet polls FleetStatus until ok accepts it, and fails after 10s.
func waitFleet(t *testing.T, h *harness, what string, ok func(*berryv1.FleetStatusResponse) bool) *berryv1.FleetStatusResponse {
	t.Helper()
	c := h.admin(t, readTok)
	deadline := time.Now().Add(10 * time.Second)
	for {
		fs, err := c.FleetStatus(ctxT(t), &berryv1.FleetStatusRequest{})
		if err != nil {
			t.Fatal(err)
		}
		if ok(fs) {
			return fs
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 10s; fleet %v", what, fs)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func hasEdge(fs *berryv1.FleetStatusResponse) bool { return len(fs.GetEdges()) == 1 }

// What FleetStatus says of an edge that (re)connects: a version of this data file's
// lineage was ACKed on an earlier stream; a version of another lineage says nothing
// of this one's, and the edge is not rolled out until it ACKs the current snapshot.
func TestFleetStatusOfAReconnectingEdge(t *testing.T) {
	h := start(t)
	h.seed(t) // version 1
	cur, _ := h.srv.admin.snapshots.Watch()
	tests := []struct {
		name        string
		lineage     string
		applied     uint64
		hash        []byte
		wantApplied uint64
		wantAck     uint64
		wantRolled  bool
	}{
		{"current version, same lineage", "", 1, nil, 1, 1, true},
		{"current version, same content", "", 1, cur.GetContentHash(), 1, 1, true},
		// The data file was put back outside restore: the edge's number is this
		// file's, its content is not.
		{"current version, other content", "", 1, []byte("other"), 0, 0, false},
		{"a version this file has not reached", "", 5, nil, 0, 0, false},
		{"higher version of another lineage", "other", 99, nil, 0, 0, false},
		{"nothing applied", "", 0, nil, 0, 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			lineage := tt.lineage
			if lineage == "" {
				lineage = h.srv.admin.store.Lineage()
			}
			stream, cancel := openSync(t, h, &berryv1.Hello{EdgeId: "e", AppliedVersion: tt.applied, AppliedLineage: lineage, AppliedHash: tt.hash})
			fs := waitFleet(t, h, "edge listed", func(fs *berryv1.FleetStatusResponse) bool {
				return hasEdge(fs) && fs.Edges[0].Connected
			})
			e := fs.Edges[0]
			if e.AppliedVersion != tt.wantApplied || e.LastAckVersion != tt.wantAck || e.LastNack != "" || fs.RolledOut != tt.wantRolled {
				t.Errorf("applied %d, last ACK %d (NACK %q), rolled out %v; want %d, %d, none, %v",
					e.AppliedVersion, e.LastAckVersion, e.LastNack, fs.RolledOut, tt.wantApplied, tt.wantAck, tt.wantRolled)
			}
			if !tt.wantRolled {
				// It is sent the current snapshot.
				msg, err := stream.Recv()
				if err != nil || msg.GetSnapshot().GetVersion() != 1 || !bytes.Equal(msg.GetSnapshot().GetContentHash(), cur.GetContentHash()) {
					t.Fatalf("first message %v, %v; want the current snapshot with its hash", msg, err)
				}
			}
			cancel()
			waitFleet(t, h, "edge gone", func(fs *berryv1.FleetStatusResponse) bool { return hasEdge(fs) && !fs.Edges[0].Connected })
		})
	}
}

// LAST SEEN moves on every message from the edge, not only on ACKs.
func TestLastSeenMovesOnObservations(t *testing.T) {
	h := start(t)
	h.seed(t)
	stream, _ := openSync(t, h, &berryv1.Hello{EdgeId: "e", AppliedVersion: 1, AppliedLineage: h.srv.admin.store.Lineage()})
	first := waitFleet(t, h, "edge listed", hasEdge).Edges[0].LastSeen.AsTime()
	batch := &berryv1.SyncRequest{Kind: &berryv1.SyncRequest_Observations{Observations: &berryv1.ObservationBatch{}}}
	waitFleet(t, h, "LAST SEEN moved by an observation batch", func(fs *berryv1.FleetStatusResponse) bool {
		if err := stream.Send(batch); err != nil {
			t.Fatal(err)
		}
		return hasEdge(fs) && fs.Edges[0].LastSeen.AsTime().After(first)
	})
}

// Options.EdgeExpiry reaches the registry: a disconnected edge is forgotten.
func TestDisconnectedEdgeExpires(t *testing.T) {
	h := startWith(t, Options{EdgeExpiry: time.Nanosecond})
	h.seed(t)
	_, cancel := openSync(t, h, &berryv1.Hello{EdgeId: "pod-1"})
	waitFleet(t, h, "edge listed", hasEdge)
	cancel()
	waitFleet(t, h, "edge forgotten", func(fs *berryv1.FleetStatusResponse) bool { return len(fs.GetEdges()) == 0 })
}
