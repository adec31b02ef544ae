package server

import (
	"context"
	"strings"
	"testing"
	"time"

	berryv1 "github.com/berry-gateway/berry/pkg/api/berry/v1"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
)

// Drain's order: health reports NOT_SERVING at once while calls and edge streams go
// on for the delay; then the edge streams end with UNAVAILABLE (edges reconnect
// elsewhere) and the server stops.
func TestDrainOrder(t *testing.T) {
	h := start(t)
	h.seed(t)
	edge, _ := openSync(t, h, &berryv1.Hello{EdgeId: "e"})
	if msg, err := edge.Recv(); err != nil || msg.GetSnapshot().GetVersion() != 1 {
		t.Fatalf("first message %v, %v", msg, err)
	}
	wctx, stopWatch := context.WithCancel(ctxT(t))
	defer stopWatch()
	watch, err := healthpb.NewHealthClient(h.conn(t, "")).Watch(wctx, &healthpb.HealthCheckRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if r, err := watch.Recv(); err != nil || r.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("health before drain: %v, %v", r, err)
	}
	admin := h.admin(t, readTok)

	const delay = time.Second
	began := time.Now()
	drained := make(chan struct{})
	go func() {
		h.srv.Drain(context.Background(), h.gs, delay, 5*time.Second)
		close(drained)
	}()
	if r, err := watch.Recv(); err != nil || r.GetStatus() != healthpb.HealthCheckResponse_NOT_SERVING {
		t.Fatalf("health on drain: %v, %v", r, err)
	}
	stopWatch() // a watch is a call in flight, which the graceful stop would wait for
	if _, err := admin.GetCurrentVersion(ctxT(t), &berryv1.GetCurrentVersionRequest{}); err != nil {
		t.Fatalf("a call during the shutdown delay: %v", err)
	}
	if d := time.Since(began); d >= delay {
		t.Fatalf("NOT_SERVING and a call took %v, longer than the delay: the test proves nothing", d)
	}
	var err2 error
	for err2 == nil {
		_, err2 = edge.Recv() // scores may come first
	}
	if status.Code(err2) != codes.Unavailable || time.Since(began) < delay {
		t.Fatalf("edge stream ended after %v with %v; want UNAVAILABLE after the %v delay", time.Since(began), err2, delay)
	}
	select {
	case <-drained:
	case <-time.After(10 * time.Second):
		t.Fatal("Drain did not return")
	}
	_, err = h.admin(t, readTok).GetCurrentVersion(ctxT(t), &berryv1.GetCurrentVersionRequest{})
	wantCode(t, "a call after the drain", err, codes.Unavailable)
	logs := h.logs.String()
	if i, j := strings.Index(logs, "NOT_SERVING"), strings.Index(logs, "ending edge streams"); i < 0 || j < i {
		t.Fatalf("logs out of order:\n%s", logs)
	}
}

// An end of Drain's context cuts the delay and the graceful wait short.
func TestDrainCutShort(t *testing.T) {
	h := start(t)
	// A call in flight that never ends by itself: the graceful stop would wait on it.
	watch, err := healthpb.NewHealthClient(h.conn(t, "")).Watch(ctxT(t), &healthpb.HealthCheckRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := watch.Recv(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	began := time.Now()
	h.srv.Drain(ctx, h.gs, time.Hour, time.Hour)
	if d := time.Since(began); d > 5*time.Second {
		t.Fatalf("Drain took %v after its context ended", d)
	}
}
