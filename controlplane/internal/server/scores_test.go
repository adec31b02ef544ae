package server

import (
	"context"
	"fmt"
	"math"
	"testing"
	"time"

	"github.com/berry-gateway/berry/controlplane/internal/cache"
	"github.com/berry-gateway/berry/controlplane/internal/fleetscore"
	berryv1 "github.com/berry-gateway/berry/pkg/api/berry/v1"
	"github.com/berry-gateway/berry/pkg/config"
	"google.golang.org/protobuf/proto"
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
	base := h.srv.scoring.observed.Load()
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
	for h.srv.scoring.observed.Load() < want {
		if time.Now().After(deadline) {
			b.Fatalf("absorbed %d of %d observations after a minute", h.srv.scoring.observed.Load()-base, n*backends)
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
	h := NewScoreService(&cache.Snapshots{}, &cache.Scores{}, 0, 0)
	now := time.Now()
	b := config.BackendKey{Provider: "p", Model: "b"}
	closeOld := h.StreamOpened("e")
	closeNew := h.StreamOpened("e")
	h.merger.Observe("e", now, []fleetscore.Observation[config.BackendKey]{{Backend: b, Latency: 1, Samples: 5}})
	closeOld()
	if _, s := h.merger.Scores(now); s[b].Edges != 1 {
		t.Fatalf("after the old stream closed: %+v, want e's contribution kept", s[b])
	}
	closeNew()
	if _, s := h.merger.Scores(now); s[b].Edges != 0 {
		t.Fatalf("after the last stream closed: %+v, want e's contribution gone", s[b])
	}
}

// The fleet marks a backend down on the attempts that speak to its health: 4xx answers
// are the clients' doing, so they count neither as failures nor towards the breaker
// threshold.
func TestDownRuleByClass(t *testing.T) {
	key := config.BackendKey{Provider: "p", Model: "m"}
	tests := []struct {
		name      string
		threshold uint32 // the config's circuit_breaker_failure_threshold; 0: no config
		obs       *berryv1.BackendObservation
		wantRate  float64
		wantDown  bool
	}{
		{"all answered", 0, &berryv1.BackendObservation{Requests: 20}, 0, false},
		{"mostly 4xx, a few 5xx: not down", 0,
			&berryv1.BackendObservation{Requests: 40, ClientErrors: 30, ServerErrors: 3}, 0.3, false},
		{"5xx and no answer reach half of the non-4xx attempts: down", 0,
			&berryv1.BackendObservation{Requests: 20, ClientErrors: 10, ServerErrors: 3, NoAnswer: 2}, 0.5, true},
		{"threshold counts only non-4xx attempts", 0,
			&berryv1.BackendObservation{Requests: 8, ClientErrors: 4, ServerErrors: 4}, 1, false},
		{"threshold reached by non-4xx attempts", 0,
			&berryv1.BackendObservation{Requests: 9, ClientErrors: 4, ServerErrors: 4, NoAnswer: 1}, 1, true},
		{"only 4xx", 0, &berryv1.BackendObservation{Requests: 50, ClientErrors: 50}, 0, false},
		{"the config's threshold", 10, &berryv1.BackendObservation{Requests: 9, NoAnswer: 9}, 1, false},
		{"the config's threshold reached", 10, &berryv1.BackendObservation{Requests: 10, NoAnswer: 10}, 1, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var snaps cache.Snapshots
			if tt.threshold > 0 {
				snaps.Set(&berryv1.Snapshot{Version: 1, Config: &berryv1.Config{
					Settings: &berryv1.Settings{CircuitBreakerFailureThreshold: tt.threshold}}})
			}
			s := NewScoreService(&snaps, &cache.Scores{}, 0, 0)
			o := proto.Clone(tt.obs).(*berryv1.BackendObservation)
			o.Provider, o.UpstreamModel = key.Provider, key.Model
			s.Observed("e", &berryv1.ObservationBatch{Backends: []*berryv1.BackendObservation{o}})
			out := s.merge(time.Now())
			if len(out.GetBackends()) != 1 {
				t.Fatalf("scores %v, want one backend", out.GetBackends())
			}
			b := out.GetBackends()[0]
			if b.GetProvider() != key.Provider || b.GetUpstreamModel() != key.Model ||
				b.GetRequests() != float64(tt.obs.GetRequests()) || b.GetClientErrors() != float64(tt.obs.GetClientErrors()) ||
				b.GetServerErrors() != float64(tt.obs.GetServerErrors()) || b.GetNoAnswer() != float64(tt.obs.GetNoAnswer()) {
				t.Fatalf("score %v does not carry the observed attempts %v", b, tt.obs)
			}
			if math.Abs(b.GetErrorRate()-tt.wantRate) > 1e-9 || b.GetDown() != tt.wantDown {
				t.Fatalf("error rate %v down %v, want %v %v", b.GetErrorRate(), b.GetDown(), tt.wantRate, tt.wantDown)
			}
		})
	}
}

// Scores are merged and pushed from the start, before any edge connects, and the loop
// ends with Shutdown.
func TestScoresStartWithTheServer(t *testing.T) {
	h := startWith(t, Options{ScoreInterval: 10 * time.Millisecond})
	c := h.admin(t, readTok)
	deadline := time.Now().Add(10 * time.Second)
	for {
		r, err := c.GetScores(ctxT(t), &berryv1.GetScoresRequest{})
		if err != nil {
			t.Fatal(err)
		}
		if r.GetEpoch() > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no scores pushed while no edge is connected")
		}
		time.Sleep(5 * time.Millisecond)
	}
	h.srv.Shutdown()
	latest, _ := h.srv.admin.scores.Watch()
	time.Sleep(50 * time.Millisecond)
	if now, _ := h.srv.admin.scores.Watch(); now.GetEpoch() != latest.GetEpoch() {
		t.Fatalf("scores still merged after Shutdown: epoch %d, then %d", latest.GetEpoch(), now.GetEpoch())
	}
}

// An edge's observations come back to it, merged, on its own stream: down by class,
// with the class counts, and with the edge as its providers' probe owner.
func TestObservationsComeBackAsScores(t *testing.T) {
	h := startWith(t, Options{ScoreInterval: 20 * time.Millisecond})
	h.seed(t)
	stream, err := berryv1.NewEdgeServiceClient(h.conn(t, edgeTok)).Sync(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	send := func(m *berryv1.SyncRequest) {
		t.Helper()
		if err := stream.Send(m); err != nil {
			t.Fatal(err)
		}
	}
	send(&berryv1.SyncRequest{Kind: &berryv1.SyncRequest_Hello{Hello: &berryv1.Hello{EdgeId: "solo"}}})
	// Probes go to edges that report: a first, empty report makes it one.
	send(&berryv1.SyncRequest{Kind: &berryv1.SyncRequest_Observations{Observations: &berryv1.ObservationBatch{}}})
	obs := &berryv1.BackendObservation{Provider: "openai", UpstreamModel: "gpt-4o", LatencySeconds: 0.2, Samples: 10,
		Requests: 20, ClientErrors: 10, ServerErrors: 4, NoAnswer: 1, ProbeHealthy: true}
	observed := false
	for {
		msg, err := stream.Recv()
		if err != nil {
			t.Fatal(err)
		}
		fs := msg.GetScores()
		if fs == nil {
			continue
		}
		if fs.GetProbeOwners()["openai"] != "solo" {
			continue // merged before this edge connected
		}
		if !observed {
			// The edge reports once it knows it owns the provider's probes, so its
			// probe result is shared.
			send(&berryv1.SyncRequest{Kind: &berryv1.SyncRequest_Observations{
				Observations: &berryv1.ObservationBatch{Backends: []*berryv1.BackendObservation{obs}}}})
			observed = true
			continue
		}
		if len(fs.GetBackends()) == 0 {
			continue
		}
		b := fs.GetBackends()[0]
		if b.GetProvider() != "openai" || b.GetUpstreamModel() != "gpt-4o" || b.GetLatencySeconds() != 0.2 ||
			b.GetClientErrors() != 10 || b.GetServerErrors() != 4 || b.GetNoAnswer() != 1 ||
			b.GetErrorRate() != 0.5 || !b.GetDown() ||
			b.GetProbeOwner() != "solo" || !b.GetProbed() || !b.GetProbeHealthy() {
			t.Fatalf("score %v", b)
		}
		return
	}
}

// Probe ownership and shared probe results need more than a claim: an edge that
// opens a stream and never reports takes no provider's probes, and an owner's failed
// probe is not passed on while the fleet's own traffic to the backend succeeds.
func TestProbeClaimsNeedEvidence(t *testing.T) {
	h := startWith(t, Options{ScoreInterval: 20 * time.Millisecond})
	h.seed(t)
	silent, _ := openSync(t, h, &berryv1.Hello{EdgeId: "silent"})
	reporter, _ := openSync(t, h, &berryv1.Hello{EdgeId: "reporter"})
	report := func(o *berryv1.BackendObservation) {
		t.Helper()
		if err := reporter.Send(&berryv1.SyncRequest{Kind: &berryv1.SyncRequest_Observations{
			Observations: &berryv1.ObservationBatch{Backends: []*berryv1.BackendObservation{o}}}}); err != nil {
			t.Fatal(err)
		}
	}
	report(&berryv1.BackendObservation{Provider: "openai", UpstreamModel: "gpt-4o", ProbeHealthy: true})
	next := func(what string, ok func(*berryv1.FleetScores) bool) *berryv1.FleetScores {
		t.Helper()
		for {
			msg, err := silent.Recv()
			if err != nil {
				t.Fatalf("%s: %v", what, err)
			}
			if fs := msg.GetScores(); fs != nil && ok(fs) {
				return fs
			}
		}
	}
	fs := next("the reporting edge owns the probes", func(fs *berryv1.FleetScores) bool {
		return fs.GetProbeOwners()["openai"] == "reporter"
	})
	for p, o := range fs.GetProbeOwners() {
		if o == "silent" {
			t.Fatalf("provider %s given to an edge that never reported", p)
		}
	}
	// The owner's probe fails while its traffic (20 attempts, none failed) succeeds.
	report(&berryv1.BackendObservation{Provider: "openai", UpstreamModel: "gpt-4o", Requests: 20, ProbeHealthy: false})
	fs = next("the owner's probe result is in", func(fs *berryv1.FleetScores) bool {
		return len(fs.GetBackends()) > 0 && fs.GetBackends()[0].GetProbed() && fs.GetBackends()[0].GetRequests() > 10
	})
	if b := fs.GetBackends()[0]; !b.GetProbeHealthy() || b.GetDown() {
		t.Fatalf("a failed probe contradicted by traffic was passed on: %v", b)
	}
	// When its traffic fails too, the failure stands.
	for range 3 {
		report(&berryv1.BackendObservation{Provider: "openai", UpstreamModel: "gpt-4o", Requests: 20, ServerErrors: 20, ProbeHealthy: false})
	}
	next("a failed probe backed by failing traffic is passed on", func(fs *berryv1.FleetScores) bool {
		return len(fs.GetBackends()) > 0 && fs.GetBackends()[0].GetProbed() && !fs.GetBackends()[0].GetProbeHealthy()
	})
}
