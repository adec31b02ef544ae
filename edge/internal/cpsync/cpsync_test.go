package cpsync

import (
	"context"
	"errors"
	"net"
	"sync"
	"testing"
	"time"

	berryv1 "github.com/berry-gateway/berry/pkg/api/berry/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

// fakeApplier accepts any snapshot whose config has a settings message.
type fakeApplier struct {
	mu      sync.Mutex
	applied uint64
}

func (f *fakeApplier) Apply(s *berryv1.Snapshot) error {
	if s.GetConfig().GetSettings() == nil {
		return errors.New("no settings")
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.applied = s.GetVersion()
	return nil
}

func (f *fakeApplier) AppliedHash() []byte { return nil }

func (f *fakeApplier) Applied() (uint64, string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.applied, ""
}

// scriptServer sends a fixed list of snapshots on every stream and records what the
// edge says.
type scriptServer struct {
	berryv1.UnimplementedEdgeServiceServer
	snaps  []*berryv1.Snapshot
	hellos chan *berryv1.Hello
	acks   chan *berryv1.SnapshotAck
	// failFirst ends the first stream right after the hello, to exercise reconnects.
	failFirst bool
	mu        sync.Mutex
	streams   int
}

func (s *scriptServer) Sync(stream grpc.BidiStreamingServer[berryv1.SyncRequest, berryv1.SyncResponse]) error {
	m, err := stream.Recv()
	if err != nil {
		return err
	}
	s.hellos <- m.GetHello()
	s.mu.Lock()
	s.streams++
	n := s.streams
	s.mu.Unlock()
	if s.failFirst && n == 1 {
		return errors.New("boom")
	}
	var top uint64 // the newest version ACKed
	for _, snap := range s.snaps {
		if err := stream.Send(&berryv1.SyncResponse{Kind: &berryv1.SyncResponse_Snapshot{Snapshot: snap}}); err != nil {
			return err
		}
		if snap.GetVersion() < top {
			continue // older than what the edge serves: it does not answer
		}
		m, err := stream.Recv()
		if err != nil {
			return err
		}
		s.acks <- m.GetAck()
		if m.GetAck().GetAccepted() {
			top = max(top, m.GetAck().GetVersion())
		}
	}
	<-stream.Context().Done()
	return nil
}

func start(t *testing.T, srv berryv1.EdgeServiceServer) *grpc.ClientConn {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gs := grpc.NewServer()
	berryv1.RegisterEdgeServiceServer(gs, srv)
	go func() { _ = gs.Serve(lis) }()
	t.Cleanup(gs.Stop)
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

func snap(v uint64, valid bool) *berryv1.Snapshot {
	s := &berryv1.Snapshot{Version: v, Config: &berryv1.Config{}}
	if valid {
		s.Config.Settings = &berryv1.Settings{}
	}
	return s
}

func TestAckNackAndVersionsOnlyGoUp(t *testing.T) {
	srv := &scriptServer{
		snaps:  []*berryv1.Snapshot{snap(2, true), snap(1, true), snap(2, true), snap(3, false), snap(4, true)},
		hellos: make(chan *berryv1.Hello, 4), acks: make(chan *berryv1.SnapshotAck, 8),
	}
	conn := start(t, srv)
	app := &fakeApplier{}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	c := &Client{Conn: conn, EdgeID: "e1", BuildVersion: "test", Runtime: app}
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()

	if h := <-srv.hellos; h.GetEdgeId() != "e1" || h.GetAppliedVersion() != 0 {
		t.Fatalf("hello = %v", h)
	}
	want := []struct {
		version  uint64
		accepted bool
		applied  uint64
	}{
		{2, true, 2},
		// 1, older: no answer (the next message is the ACK of the 2 after it), keep
		// serving 2
		{2, true, 2},  // same version: ACK, nothing to do
		{3, false, 2}, // cannot apply: NACK with reason
		{4, true, 4},
	}
	for i, w := range want {
		a := <-srv.acks
		if a.GetVersion() != w.version || a.GetAccepted() != w.accepted {
			t.Fatalf("ack %d = %v, want version %d accepted %v", i, a, w.version, w.accepted)
		}
		if !w.accepted && a.GetErrorDetail() == "" {
			t.Errorf("NACK %d has no error detail", i)
		}
		if got, _ := app.Applied(); got != w.applied {
			t.Errorf("after ack %d applied = %d, want %d", i, got, w.applied)
		}
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("Run = %v, want context.Canceled", err)
	}
}

func TestReconnectSendsAppliedVersion(t *testing.T) {
	srv := &scriptServer{
		snaps: []*berryv1.Snapshot{snap(7, true)}, failFirst: true,
		hellos: make(chan *berryv1.Hello, 4), acks: make(chan *berryv1.SnapshotAck, 4),
	}
	conn := start(t, srv)
	app := &fakeApplier{applied: 5}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	c := &Client{Conn: conn, EdgeID: "e1", Runtime: app, MinBackoff: time.Millisecond, MaxBackoff: 10 * time.Millisecond}
	go func() { _ = c.Run(ctx) }()
	for i := range 2 {
		if h := <-srv.hellos; h.GetAppliedVersion() != 5 {
			t.Fatalf("hello %d applied_version = %d, want 5", i, h.GetAppliedVersion())
		}
	}
	if a := <-srv.acks; a.GetVersion() != 7 || !a.GetAccepted() {
		t.Fatalf("ack after reconnect = %v", a)
	}
}
