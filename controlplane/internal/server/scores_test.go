package server

import (
	"context"
	"fmt"
	"testing"
	"time"

	berryv1 "github.com/berry-gateway/berry/pkg/api/berry/v1"
)

// BenchmarkAbsorbObservations: how many backend observations per second one control
// plane takes in over real loopback gRPC from 1,000 edge streams reporting on 20
// backends each (one batch is one edge's report on all 20).
func BenchmarkAbsorbObservations(b *testing.B) {
	const edges, backends = 1000, 20
	h := start(b)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	batch := &berryv1.ObservationBatch{}
	for i := range backends {
		batch.Backends = append(batch.Backends, &berryv1.BackendObservation{
			Provider: fmt.Sprintf("p%d", i%4), UpstreamModel: fmt.Sprintf("m%d", i),
			LatencySeconds: 0.2, TtftSeconds: 0.05, Samples: 10, Requests: 10, Errors: 1, ProbeHealthy: true,
		})
	}
	msg := &berryv1.SyncRequest{Kind: &berryv1.SyncRequest_Observations{Observations: batch}}
	// A few connections, as edges behind one host would share none: spread the
	// streams so one HTTP/2 connection's flow control is not the bottleneck.
	conns := make([]berryv1.EdgeServiceClient, 8)
	for i := range conns {
		conns[i] = berryv1.NewEdgeServiceClient(h.conn(b, edgeTok))
	}
	streams := make([]berryv1.EdgeService_SyncClient, edges)
	for i := range streams {
		st, err := conns[i%len(conns)].Sync(ctx)
		if err != nil {
			b.Fatal(err)
		}
		if err := st.Send(&berryv1.SyncRequest{Kind: &berryv1.SyncRequest_Hello{Hello: &berryv1.Hello{EdgeId: fmt.Sprintf("edge-%04d", i)}}}); err != nil {
			b.Fatal(err)
		}
		if _, err := st.Header(); err != nil {
			b.Fatal(err)
		}
		go func() { // drain scores so the server's sends never stall
			for {
				if _, err := st.Recv(); err != nil {
					return
				}
			}
		}()
		streams[i] = st
	}
	base := h.srv.scores.observed.Load()
	b.ResetTimer()
	began := time.Now()
	n := 0
	for b.Loop() {
		if err := streams[n%edges].Send(msg); err != nil {
			b.Fatal(err)
		}
		n++
	}
	want := base + uint64(n*backends)
	deadline := time.Now().Add(time.Minute)
	for h.srv.scores.observed.Load() < want {
		if time.Now().After(deadline) {
			b.Fatalf("absorbed %d of %d observations after a minute", h.srv.scores.observed.Load()-base, n*backends)
		}
		time.Sleep(time.Millisecond)
	}
	// Counted until the last observation is merged, not just sent.
	b.ReportMetric(float64(n*backends)/time.Since(began).Seconds(), "obs/s")
}
