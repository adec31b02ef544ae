package cpsync

import (
	"context"
	"testing"
	"time"

	"github.com/berry-gateway/berry/edge/internal/backends"
	"github.com/berry-gateway/berry/edge/internal/serving"
	berryv1 "github.com/berry-gateway/berry/pkg/api/berry/v1"
	"github.com/berry-gateway/berry/pkg/config"
	"google.golang.org/grpc"
)

func TestScoreEpochsOnlyGoUpWithinAnInstance(t *testing.T) {
	c := &Client{EdgeID: "e", Fleet: &serving.Runtime{}}
	steps := []struct {
		instance string
		epoch    uint64
		applied  bool
	}{
		{"i1", 5, true},
		{"i1", 3, false}, // older
		{"i1", 5, false}, // same
		{"i1", 6, true},
		{"i2", 1, true}, // a restarted control plane starts over
		{"i2", 2, true},
	}
	for i, s := range steps {
		if got := c.applyScores(&berryv1.FleetScores{Instance: s.instance, Epoch: s.epoch}); got != s.applied {
			t.Fatalf("step %d (%s/%d): applied %v, want %v", i, s.instance, s.epoch, got, s.applied)
		}
	}
	if in, ep := c.ScoreEpoch(); in != "i2" || ep != 2 {
		t.Fatalf("ScoreEpoch = %s/%d", in, ep)
	}
}

func TestMergeObservations(t *testing.T) {
	old := []*berryv1.BackendObservation{
		{Provider: "p", UpstreamModel: "m", LatencySeconds: 1, Samples: 2, Requests: 3, InFlight: 4, ServerErrors: 1},
	}
	newer := []*berryv1.BackendObservation{
		{Provider: "p", UpstreamModel: "m", LatencySeconds: 2, Samples: 1, Requests: 1, InFlight: 1, ProbeHealthy: true, ClientErrors: 1},
		{Provider: "q", UpstreamModel: "m", Samples: 7},
	}
	got := mergeObservations(old, newer)
	if len(got) != 2 {
		t.Fatalf("%d merged, want 2", len(got))
	}
	p := got[0]
	if p.LatencySeconds != 2 || p.Samples != 3 || p.Requests != 4 || p.InFlight != 1 || !p.ProbeHealthy ||
		p.ServerErrors != 1 || p.ClientErrors != 1 {
		t.Fatalf("merged p/m = %v: counts add up, the rest is the newer", p)
	}
	if got[1].GetProvider() != "q" || got[1].GetSamples() != 7 {
		t.Fatalf("new backend = %v", got[1])
	}
}

// fleetServer pushes one score message and hands every observation batch to obs.
type fleetServer struct {
	berryv1.UnimplementedEdgeServiceServer
	scores *berryv1.FleetScores
	obs    chan *berryv1.ObservationBatch
}

func (s *fleetServer) Sync(stream grpc.BidiStreamingServer[berryv1.SyncRequest, berryv1.SyncResponse]) error {
	if _, err := stream.Recv(); err != nil { // hello
		return err
	}
	if err := stream.Send(&berryv1.SyncResponse{Kind: &berryv1.SyncResponse_Scores{Scores: s.scores}}); err != nil {
		return err
	}
	for {
		m, err := stream.Recv()
		if err != nil {
			return err
		}
		if b := m.GetObservations(); b != nil {
			select {
			case s.obs <- b:
			default: // the test has seen enough
			}
		}
	}
}

// Over a real stream: the edge reports its samples and takes the pushed scores; when
// the stream ends it is back on its own estimates.
func TestReportAndReceiveScores(t *testing.T) {
	rt, st := fleetRuntime(t)
	st.Latency.Observe(50*time.Millisecond, time.Now())
	srv := &fleetServer{
		scores: &berryv1.FleetScores{Instance: "i", Epoch: 1, Backends: []*berryv1.BackendScore{
			{Provider: "p", UpstreamModel: "m", LatencySeconds: 0.05, TtftSeconds: 0.7},
		}},
		obs: make(chan *berryv1.ObservationBatch, 16),
	}
	conn := start(t, srv)
	ctx, cancel := context.WithCancel(context.Background())
	c := &Client{Conn: conn, EdgeID: "e", Runtime: &fakeApplier{}, Fleet: rt, ReportInterval: 20 * time.Millisecond}
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()

	deadline := time.After(20 * time.Second)
	var samples uint32
	for samples == 0 {
		select {
		case b := <-srv.obs:
			for _, o := range b.GetBackends() {
				if o.GetProvider() == "p" && o.GetUpstreamModel() == "m" {
					samples += o.GetSamples()
				}
			}
		case <-deadline:
			t.Fatal("no observation batch with the edge's sample within 20s")
		}
	}
	for st.Latency.FleetFirstToken(time.Now()) != 0.7 {
		select {
		case <-deadline:
			t.Fatal("pushed scores not applied within 20s")
		case <-time.After(10 * time.Millisecond):
		}
	}
	cancel()
	<-done
	if got := st.Latency.FleetFirstToken(time.Now()); got != 0 {
		t.Fatalf("fleet TTFT %v kept after the stream ended", got)
	}
}

// A send that is stuck (slow stream) never stalls the reporter: later batches are
// merged into one pending batch, counted, and their samples all arrive once the send
// frees up.
func TestSlowStreamMergesBatches(t *testing.T) {
	rt, st := fleetRuntime(t)
	c := &Client{EdgeID: "e", Fleet: rt, ReportInterval: 5 * time.Millisecond}
	release := make(chan struct{})
	sent := make(chan *berryv1.ObservationBatch, 64)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		_ = c.report(ctx, func(b *berryv1.ObservationBatch) error {
			<-release
			sent <- b
			return nil
		})
	}()
	// The first batch gets stuck in send; samples taken after it must travel in the
	// merged pending batch.
	deadline := time.Now().Add(20 * time.Second)
	waitMerged := func(n uint64) {
		for c.MergedBatches() < n {
			if time.Now().After(deadline) {
				t.Fatalf("fewer than %d batches merged behind a stuck send within 20s", n)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	waitMerged(1)
	for range 10 {
		st.Latency.Observe(time.Millisecond, time.Now())
	}
	waitMerged(3)
	close(release)
	var samples uint32
	var merged uint32
	for samples < 10 {
		select {
		case b := <-sent:
			merged += b.GetMergedBatches()
			for _, o := range b.GetBackends() {
				samples += o.GetSamples()
			}
		case <-time.After(20 * time.Second):
			t.Fatalf("only %d of 10 samples arrived", samples)
		}
	}
	if merged == 0 {
		t.Fatal("no batch says it carries merged ones")
	}
}

// fleetRuntime serves one backend, p/m, and returns its state.
func fleetRuntime(t *testing.T) (*serving.Runtime, *backends.State) {
	t.Helper()
	cfg, _, err := config.ParseTOML([]byte(`
[providers.p]
name = "p"
base_url = "http://127.0.0.1:1/v1"
models = ["m"]
[models.x]
name = "x"
[[models.x.backends]]
provider = "p"
model = "m"
`))
	if err != nil {
		t.Fatal(err)
	}
	var rt serving.Runtime
	if err := rt.Apply(&berryv1.Snapshot{Version: 1, Config: cfg}); err != nil {
		t.Fatal(err)
	}
	return &rt, rt.Table().ModelByName("x").Backends[0].State
}
