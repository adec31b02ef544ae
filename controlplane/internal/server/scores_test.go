package server

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/berry-gateway/berry/controlplane/internal/fleetscore"
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
			LatencySeconds: 0.2, TtftSeconds: 0.05, Samples: 10, Requests: 10, ServerErrors: 1, ProbeHealthy: true,
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

// Rendezvous assignment: every provider has exactly one owner among the connected
// edges, and an edge leaving moves only the providers it owned.
func TestProbeOwnerMovesOnlyTheLeaversProviders(t *testing.T) {
	edges := []string{"e1", "e2", "e3", "e4", "e5"}
	var providers []string
	for i := range 50 {
		providers = append(providers, fmt.Sprintf("p%d", i))
	}
	before := map[string]string{}
	owned := map[string]int{}
	for _, p := range providers {
		o := probeOwner(p, edges)
		before[p] = o
		owned[o]++
	}
	if len(owned) < 3 {
		t.Fatalf("50 providers landed on only %d of 5 edges: %v", len(owned), owned)
	}
	for _, leaver := range edges {
		var rest []string
		for _, e := range edges {
			if e != leaver {
				rest = append(rest, e)
			}
		}
		for _, p := range providers {
			after := probeOwner(p, rest)
			if after == leaver {
				t.Fatalf("%s still owned by %s, which left", p, leaver)
			}
			if before[p] != leaver && after != before[p] {
				t.Fatalf("%s moved from %s to %s although only %s left", p, before[p], after, leaver)
			}
		}
	}
	if probeOwner("p", nil) != "" {
		t.Fatal("no edges, yet an owner")
	}
}

// A reconnecting edge's old stream ending must not drop the new stream's
// contributions.
func TestOverlappingStreamsKeepContributions(t *testing.T) {
	var h scoreHub
	now := time.Now()
	closeOld := h.streamOpened("e")
	closeNew := h.streamOpened("e")
	h.merger.Observe("e", now, []fleetscore.Observation{{Backend: "b", Latency: 1, Samples: 5}})
	closeOld()
	if _, s := h.merger.Scores(now); s["b"].Edges != 1 {
		t.Fatalf("after the old stream closed: %+v, want e's contribution kept", s["b"])
	}
	closeNew()
	if _, s := h.merger.Scores(now); s["b"].Edges != 0 {
		t.Fatalf("after the last stream closed: %+v, want e's contribution gone", s["b"])
	}
}
