package cpsync

import (
	"bytes"
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/berry-gateway/berry/edge/internal/serving"
	"github.com/berry-gateway/berry/edge/internal/snapfile"
	berryv1 "github.com/berry-gateway/berry/pkg/api/berry/v1"
	"github.com/berry-gateway/berry/pkg/config"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/proto"
)

// headerServer accepts the hello with headers, like the control plane, then sends
// its snapshots and keeps the stream open. It sends the next snapshot only once the
// test has looked at the edge after the previous ACK (next), so what the test sees
// is the state that ACK describes.
type headerServer struct {
	berryv1.UnimplementedEdgeServiceServer
	snaps []*berryv1.Snapshot
	acks  chan *berryv1.SnapshotAck
	next  chan struct{}
}

func (s *headerServer) Sync(stream grpc.BidiStreamingServer[berryv1.SyncRequest, berryv1.SyncResponse]) error {
	if _, err := stream.Recv(); err != nil {
		return err
	}
	if err := stream.SendHeader(metadata.Pairs("berry-lineage", "x")); err != nil {
		return err
	}
	for _, snap := range s.snaps {
		if err := stream.Send(&berryv1.SyncResponse{Kind: &berryv1.SyncResponse_Snapshot{Snapshot: snap}}); err != nil {
			return err
		}
		m, err := stream.Recv()
		if err != nil {
			return err
		}
		s.acks <- m.GetAck()
		select {
		case <-s.next:
		case <-stream.Context().Done():
			return nil
		}
	}
	<-stream.Context().Done()
	return nil
}

func validSnap(v uint64, lineage string) *berryv1.Snapshot {
	cfg := &berryv1.Config{}
	config.Normalize(cfg)
	return &berryv1.Snapshot{Version: v, Lineage: lineage, Config: cfg}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestLineageCacheAndConnected(t *testing.T) {
	srv := &headerServer{
		snaps: []*berryv1.Snapshot{
			validSnap(5, "old"),
			validSnap(2, "new"), // another lineage (restored control plane): applied
			validSnap(3, "new"),
		},
		acks: make(chan *berryv1.SnapshotAck, 8),
		next: make(chan struct{}),
	}
	conn := start(t, srv)
	var cur serving.Runtime
	cache := snapfile.File{Path: filepath.Join(t.TempDir(), "edge.pb")}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	c := &Client{Conn: conn, EdgeID: "e1", Runtime: &cur, Disk: cache}
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()

	want := []struct {
		version  uint64
		accepted bool
		serving  uint64
		lineage  string
	}{
		{5, true, 5, "old"},
		{2, true, 2, "new"},
		{3, true, 3, "new"},
	}
	for i, w := range want {
		a := <-srv.acks
		if a.GetVersion() != w.version || a.GetAccepted() != w.accepted {
			t.Fatalf("ack %d = %v, want version %d accepted %v", i, a, w.version, w.accepted)
		}
		if v, l := cur.Applied(); v != w.serving || l != w.lineage {
			t.Fatalf("after ack %d serving %d/%q, want %d/%q", i, v, l, w.serving, w.lineage)
		}
		// The cache holds the last ACKed snapshot, written before the ACK.
		got, err := cache.Load()
		if err != nil || got.GetVersion() != w.serving || got.GetLineage() != w.lineage {
			t.Fatalf("after ack %d cache = %v, %v", i, got, err)
		}
		srv.next <- struct{}{}
	}
	if !proto.Equal(mustLoad(t, cache), srv.snaps[2]) {
		t.Fatal("cache differs from the snapshot applied")
	}
	waitFor(t, "connected", c.Connected)
	cancel()
	<-done
	waitFor(t, "disconnected", func() bool { return !c.Connected() })
}

func mustLoad(t *testing.T, f snapfile.File) *berryv1.Snapshot {
	t.Helper()
	s, err := f.Load()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestStaleAfterMaxSnapshotAge: a snapshot serves while the control plane is away
// for at most MaxSnapshotAge, counted from the last moment the stream was up (or, at
// start, from the saved snapshot's time); an edge that never had a snapshot's age
// cannot judge it.
func TestStaleAfterMaxSnapshotAge(t *testing.T) {
	now := time.Now()
	tests := []struct {
		name      string
		maxAge    time.Duration
		confirmed time.Time // SnapshotConfirmed
		want      bool
	}{
		{"off", 0, now.Add(-time.Hour), false},
		{"young", time.Minute, now.Add(-time.Second), false},
		{"old", time.Minute, now.Add(-2 * time.Minute), true},
		{"age unknown", time.Minute, time.Time{}, false},
	}
	for _, tc := range tests {
		c := &Client{MaxSnapshotAge: tc.maxAge, SnapshotConfirmed: tc.confirmed}
		if got := c.Stale(); got != tc.want {
			t.Errorf("%s: Stale = %v, want %v", tc.name, got, tc.want)
		}
	}

	// Connected, it is fresh whatever the file says; once the stream ends the age
	// counts from then.
	srv := &headerServer{snaps: []*berryv1.Snapshot{validSnap(1, "l")}, acks: make(chan *berryv1.SnapshotAck, 1), next: make(chan struct{}, 1)}
	conn := start(t, srv)
	var rt serving.Runtime
	disk := snapfile.File{Path: filepath.Join(t.TempDir(), "edge.pb")}
	c := &Client{Conn: conn, EdgeID: "e", Runtime: &rt, Disk: disk, MaxSnapshotAge: 200 * time.Millisecond,
		SnapshotConfirmed: now.Add(-time.Hour)}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	<-srv.acks
	srv.next <- struct{}{}
	waitFor(t, "connected", c.Connected)
	if c.Stale() {
		t.Fatal("stale while connected")
	}
	cancel()
	<-done
	if c.Stale() {
		t.Fatal("stale at once after the stream ended")
	}
	if saved, err := disk.Saved(); err != nil || time.Since(saved) > time.Minute {
		t.Fatalf("the snapshot file does not say it was current when the stream ended: %v, %v", saved, err)
	}
	waitFor(t, "stale", c.Stale)
}

// TestSameVersionOtherContent: a snapshot with the version the edge serves but
// another content hash (the control plane's file was put back outside restore) is
// applied; with the same hash, or none, it is the same config.
func TestSameVersionOtherContent(t *testing.T) {
	first := validSnap(3, "l")
	first.ContentHash = config.ContentHash(first.Config)
	same := validSnap(3, "l")
	same.ContentHash = first.ContentHash
	other := validSnap(3, "l")
	other.Config.Settings.MaxRetries = 7
	other.ContentHash = config.ContentHash(other.Config)
	srv := &headerServer{snaps: []*berryv1.Snapshot{first, same, other}, acks: make(chan *berryv1.SnapshotAck, 3), next: make(chan struct{})}
	conn := start(t, srv)
	var rt serving.Runtime
	c := &Client{Conn: conn, EdgeID: "e", Runtime: &rt}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	for i, wantRetries := range []int{3, 3, 7} {
		if a := <-srv.acks; !a.GetAccepted() {
			t.Fatalf("snapshot %d NACKed: %s", i, a.GetErrorDetail())
		}
		if got := rt.Table().Settings.MaxRetries; got != wantRetries {
			t.Fatalf("after snapshot %d: serving max_retries %d, want %d", i, got, wantRetries)
		}
		srv.next <- struct{}{}
	}
	if !bytes.Equal(rt.AppliedHash(), other.ContentHash) {
		t.Fatal("the runtime does not report the hash it serves")
	}
	cancel()
	<-done
}
