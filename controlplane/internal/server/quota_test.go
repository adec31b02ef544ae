package server

import (
	"context"
	"log/slog"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/berry-gateway/berry/controlplane/internal/auth"
	"github.com/berry-gateway/berry/controlplane/internal/quota"
	"github.com/berry-gateway/berry/controlplane/internal/store"
	berryv1 "github.com/berry-gateway/berry/pkg/api/berry/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/types/known/timestamppb"
)

const quotaSeed = seed + `
[users.alice.rate_limit]
requests_per_day = 100

[users.bob]
name = "Bob"
token = "bob-clear-token"
`

const rpd = berryv1.QuotaDimension_QUOTA_DIMENSION_REQUESTS_DAY

// fastQuotas makes the quota loop tick and write every 20ms.
var fastQuotas = Options{QuotaInterval: 20 * time.Millisecond, UsageFlushInterval: 20 * time.Millisecond}

// startAt serves a control plane on the data file at path, like startListener; stop
// shuts it down (writing what its quota loop holds) and closes the file, once.
func startAt(t *testing.T, path string, opts Options) (h *harness, stop func()) {
	t.Helper()
	st, err := store.Open(path, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	logs := &syncBuffer{}
	opts.Log = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	srv := New(st, opts)
	if err := srv.Load(context.Background()); err != nil {
		t.Fatal(err)
	}
	srv.Start(context.Background())
	gs := srv.NewGRPCServer(auth.NewPolicy([]auth.Credential{
		{Name: "admin", Role: auth.RoleAdmin, Token: adminTok},
		{Name: "read", Role: auth.RoleRead, Token: readTok},
		{Name: "edge", Role: auth.RoleEdge, Token: edgeTok},
	}, ReadMethods))
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = gs.Serve(lis) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			srv.Shutdown()
			gs.Stop()
			st.Close()
		})
	}
	t.Cleanup(stop)
	return &harness{srv: srv, gs: gs, addr: lis.Addr().String(), logs: logs, path: path}, stop
}

func (h *harness) apply(t *testing.T, doc string) {
	t.Helper()
	if _, err := h.admin(t, adminTok).ApplyConfig(ctxT(t), &berryv1.ApplyConfigRequest{
		Source: &berryv1.ApplyConfigRequest_Toml{Toml: doc}}); err != nil {
		t.Fatal(err)
	}
}

func sendBatch(t *testing.T, s berryv1.EdgeService_SyncClient, b *berryv1.ObservationBatch) {
	t.Helper()
	if err := s.Send(&berryv1.SyncRequest{Kind: &berryv1.SyncRequest_Observations{Observations: b}}); err != nil {
		t.Fatal(err)
	}
}

// nextGrants reads the stream until a QuotaGrants that ok accepts.
func nextGrants(t *testing.T, s berryv1.EdgeService_SyncClient, ok func(*berryv1.QuotaGrants) bool) *berryv1.QuotaGrants {
	t.Helper()
	for {
		msg, err := s.Recv()
		if err != nil {
			t.Fatal(err)
		}
		if g := msg.GetGrants(); g != nil && ok(g) {
			return g
		}
	}
}

// waitQuota polls GetQuotas for key until ok accepts its requests-per-day use.
func waitQuota(t *testing.T, h *harness, key string, ok func(*berryv1.QuotaUse) bool) *berryv1.QuotaUse {
	t.Helper()
	c := h.admin(t, readTok)
	deadline := time.Now().Add(10 * time.Second)
	for {
		r, err := c.GetQuotas(ctxT(t), &berryv1.GetQuotasRequest{Key: key})
		if err != nil {
			t.Fatal(err)
		}
		var last *berryv1.QuotaUse
		for _, u := range r.GetKeys()[0].GetLimits() {
			if u.GetDimension() == rpd {
				last = u
			}
		}
		if last != nil && ok(last) {
			return last
		}
		if time.Now().After(deadline) {
			t.Fatalf("GetQuotas %s: %v", key, r)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func usageRecord(requests, cost uint64) *berryv1.UsageRecord {
	return &berryv1.UsageRecord{Key: "alice", Model: "gpt", Provider: "openai", UpstreamModel: "gpt-4o",
		Requests: requests, InputTokens: 100 * requests, OutputTokens: 10 * requests, CostMicroUsd: cost}
}

// An edge's Sync stream carries its usage and quota reports up and its credit down;
// the ledger and the quotas are read back through the admin API.
func TestQuotaOverSync(t *testing.T) {
	h := startWith(t, fastQuotas)
	h.apply(t, quotaSeed)
	stream, _ := openSync(t, h, &berryv1.Hello{EdgeId: "e1"})
	w := quota.Window(rpd, time.Now())
	first := &berryv1.ObservationBatch{Seq: 1, Instance: "proc-1",
		Usage: []*berryv1.UsageRecord{usageRecord(3, 2500)},
		Quota: []*berryv1.QuotaReport{{Key: "alice", Dimension: rpd, Window: w, Consumed: 3, Demand: 10, Balance: -1}}}
	sendBatch(t, stream, first)
	g := nextGrants(t, stream, func(g *berryv1.QuotaGrants) bool { return len(g.GetGrants()) > 0 })
	gr := g.GetGrants()[0]
	if gr.GetKey() != "alice" || gr.GetDimension() != rpd || gr.GetWindow() != w || gr.GetCredit() <= 0 || gr.GetCredit() > 97 ||
		g.GetEdges() != 1 || g.GetInstance() == "" || g.GetSeq() == 0 || time.Since(time.UnixMilli(g.GetNowUnixMs())).Abs() > 10*time.Second {
		t.Fatalf("grants %v", g)
	}
	// The same batch again counts nothing; the next one confirms the grant and
	// reports what was spent of it.
	sendBatch(t, stream, first)
	sendBatch(t, stream, &berryv1.ObservationBatch{Seq: 2, Instance: "proc-1", AppliedGrantSeq: g.GetSeq(), GrantInstance: g.GetInstance(),
		Usage: []*berryv1.UsageRecord{usageRecord(2, 1000)},
		Quota: []*berryv1.QuotaReport{{Key: "alice", Dimension: rpd, Window: w, Consumed: 2, Demand: 2, Balance: gr.GetCredit() - 1 - 2}}})
	use := waitQuota(t, h, "alice", func(u *berryv1.QuotaUse) bool { return u.GetUsed() == 5 })
	if use.GetLimit() != 100 || use.GetOutstanding() < gr.GetCredit()-3 || use.GetOutstanding() > 95 ||
		!use.GetWindowEnd().AsTime().Equal(quota.WindowEnd(rpd, w)) {
		t.Fatalf("use %v", use)
	}

	read := h.admin(t, readTok)
	h.srv.quota.Flush(ctxT(t))
	r, err := read.GetUsage(ctxT(t), &berryv1.GetUsageRequest{GroupBy: []string{"model", "key", "backend"}})
	if err != nil {
		t.Fatal(err)
	}
	if len(r.GetRows()) != 1 {
		t.Fatalf("rows %v", r)
	}
	row := r.GetRows()[0]
	if row.GetKey() != "alice" || row.GetModel() != "gpt" || row.GetBackend() != "openai/gpt-4o" || row.GetHour() != nil ||
		row.GetRequests() != 5 || row.GetPromptTokens() != 500 || row.GetCompletionTokens() != 50 || row.GetCostUsd() != 0.0035 {
		t.Fatalf("row %v", row)
	}
	r, err = read.GetUsage(ctxT(t), &berryv1.GetUsageRequest{Key: "alice", GroupBy: []string{"hour"},
		Since: timestamppb.New(time.Now().Add(-time.Hour)), Until: timestamppb.New(time.Now().Add(time.Hour))})
	if err != nil || len(r.GetRows()) != 1 || r.GetRows()[0].GetHour() == nil || r.GetRows()[0].GetKey() != "" {
		t.Fatalf("by hour: %v, %v", r, err)
	}
	if r, err := read.GetUsage(ctxT(t), &berryv1.GetUsageRequest{Key: "bob"}); err != nil || len(r.GetRows()) != 0 {
		t.Fatalf("bob's usage: %v, %v", r, err)
	}
	_, err = read.GetUsage(ctxT(t), &berryv1.GetUsageRequest{GroupBy: []string{"key", "tenant"}})
	wantCode(t, "group_by tenant", err, codes.InvalidArgument)
	_, err = read.GetUsage(ctxT(t), &berryv1.GetUsageRequest{Since: timestamppb.Now(), Until: timestamppb.New(time.Now().Add(-time.Hour))})
	wantCode(t, "since after until", err, codes.InvalidArgument)
	_, err = h.admin(t, edgeTok).GetUsage(ctxT(t), &berryv1.GetUsageRequest{})
	wantCode(t, "GetUsage as edge", err, codes.PermissionDenied)
	_, err = h.admin(t, edgeTok).GetQuotas(ctxT(t), &berryv1.GetQuotasRequest{})
	wantCode(t, "GetQuotas as edge", err, codes.PermissionDenied)

	q, err := read.GetQuotas(ctxT(t), &berryv1.GetQuotasRequest{})
	if err != nil || len(q.GetKeys()) != 1 || q.GetKeys()[0].GetKey() != "alice" || len(q.GetKeys()[0].GetLimits()) != 1 {
		t.Fatalf("quotas %v, %v", q, err)
	}
	if q, err := read.GetQuotas(ctxT(t), &berryv1.GetQuotasRequest{Key: "bob"}); err != nil || len(q.GetKeys()) != 1 || len(q.GetKeys()[0].GetLimits()) != 0 {
		t.Fatalf("bob's quotas %v, %v", q, err)
	}
	_, err = read.GetQuotas(ctxT(t), &berryv1.GetQuotasRequest{Key: "nobody"})
	wantCode(t, "GetQuotas nobody", err, codes.NotFound)
	if n := h.srv.edge.grantsSent.Load(); n == 0 {
		t.Fatal("no grants counted")
	}
	mfs, err := h.srv.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	dups := -1.0
	for _, mf := range mfs {
		if mf.GetName() != "berry_controlplane_usage_batches_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			if m.GetLabel()[0].GetValue() == "duplicate" {
				dups = m.GetCounter().GetValue()
			}
		}
	}
	if dups != 1 {
		t.Fatalf("duplicate batches counted %v, want 1", dups)
	}
}

// A restarted control plane takes back the fleet's consumption from the store, and
// the ledger written on shutdown.
func TestQuotaSurvivesRestart(t *testing.T) {
	path := filepath.Join(t.TempDir(), "berry.db")
	h, stop := startAt(t, path, fastQuotas)
	h.apply(t, quotaSeed)
	stream, cancel := openSync(t, h, &berryv1.Hello{EdgeId: "e1"})
	w := quota.Window(rpd, time.Now())
	sendBatch(t, stream, &berryv1.ObservationBatch{Seq: 1, Instance: "p",
		Usage: []*berryv1.UsageRecord{usageRecord(7, 7000)},
		Quota: []*berryv1.QuotaReport{{Key: "alice", Dimension: rpd, Window: w, Consumed: 7, Demand: 7}}})
	waitQuota(t, h, "alice", func(u *berryv1.QuotaUse) bool { return u.GetUsed() == 7 })
	cancel()
	stop()

	h, _ = startAt(t, path, fastQuotas)
	waitQuota(t, h, "alice", func(u *berryv1.QuotaUse) bool { return u.GetUsed() == 7 })
	r, err := h.admin(t, readTok).GetUsage(ctxT(t), &berryv1.GetUsageRequest{})
	if err != nil || len(r.GetRows()) != 1 || r.GetRows()[0].GetRequests() != 7 || r.GetRows()[0].GetCostUsd() != 0.007 {
		t.Fatalf("ledger after restart: %v, %v", r, err)
	}
	// An edge that reconnects numbers its batches from 1 again on its new stream:
	// they count.
	stream, _ = openSync(t, h, &berryv1.Hello{EdgeId: "e1"})
	sendBatch(t, stream, &berryv1.ObservationBatch{Seq: 1, Instance: "p",
		Quota: []*berryv1.QuotaReport{{Key: "alice", Dimension: rpd, Window: w, Consumed: 1, Demand: 1}}})
	waitQuota(t, h, "alice", func(u *berryv1.QuotaUse) bool { return u.GetUsed() == 8 })
	g := nextGrants(t, stream, func(g *berryv1.QuotaGrants) bool { return len(g.GetGrants()) > 0 })
	if c := g.GetGrants()[0].GetCredit(); c <= 0 || c > 92 {
		t.Fatalf("credit %d after restart with 8 of 100 used", c)
	}
}

// A restarted control plane holds credit back until the edges the previous one saw
// today have reported: what they admitted while it was down is known only then. Its
// grants say Hold meanwhile, every interval, and count the edges still away; a batch
// sent while it holds counts.
func TestQuotaHoldAfterRestart(t *testing.T) {
	path := filepath.Join(t.TempDir(), "berry.db")
	h, stop := startAt(t, path, fastQuotas)
	h.apply(t, quotaSeed)
	w := quota.Window(rpd, time.Now())
	for _, id := range []string{"e1", "e2"} {
		stream, cancel := openSync(t, h, &berryv1.Hello{EdgeId: id})
		sendBatch(t, stream, &berryv1.ObservationBatch{Seq: 1, Instance: id,
			Quota: []*berryv1.QuotaReport{{Key: "alice", Dimension: rpd, Window: w, Consumed: 10, Demand: 10}}})
		defer cancel()
	}
	waitQuota(t, h, "alice", func(u *berryv1.QuotaUse) bool { return u.GetUsed() == 20 })
	stop()

	h, _ = startAt(t, path, fastQuotas)
	e2, _ := openSync(t, h, &berryv1.Hello{EdgeId: "e2"})
	sendBatch(t, e2, &berryv1.ObservationBatch{Seq: 1, Instance: "e2-restarted",
		Quota: []*berryv1.QuotaReport{{Key: "alice", Dimension: rpd, Window: w, Consumed: 30, Demand: 10}}})
	waitQuota(t, h, "alice", func(u *berryv1.QuotaUse) bool { return u.GetUsed() == 50 })
	for range 5 {
		g := nextGrants(t, e2, func(*berryv1.QuotaGrants) bool { return true })
		if !g.GetHold() || len(g.GetGrants()) != 0 || g.GetEdges() != 2 {
			t.Fatalf("grants while e1 has not reported: %v", g)
		}
	}
	if !strings.Contains(h.logs.String(), "quota credit held back") {
		t.Fatalf("no log of the hold: %s", h.logs.String())
	}
	e1, _ := openSync(t, h, &berryv1.Hello{EdgeId: "e1"})
	sendBatch(t, e1, &berryv1.ObservationBatch{Seq: 1, Instance: "e1-restarted",
		Quota: []*berryv1.QuotaReport{{Key: "alice", Dimension: rpd, Window: w, Consumed: 25, Demand: 10}}})
	g := nextGrants(t, e2, func(g *berryv1.QuotaGrants) bool { return !g.GetHold() })
	if g.GetEdges() != 2 {
		t.Fatalf("grants after the hold: %v", g)
	}
	sendBatch(t, e2, &berryv1.ObservationBatch{Seq: 2, Instance: "e2-restarted",
		Quota: []*berryv1.QuotaReport{{Key: "alice", Dimension: rpd, Window: w, Demand: 10}}})
	if len(g.GetGrants()) == 0 {
		g = nextGrants(t, e2, func(g *berryv1.QuotaGrants) bool { return len(g.GetGrants()) > 0 })
	}
	if c := g.GetGrants()[0].GetCredit(); g.GetHold() || c <= 0 || c > 100-75 {
		t.Fatalf("credit %v with 75 of 100 used", g)
	}
	waitQuota(t, h, "alice", func(u *berryv1.QuotaUse) bool { return u.GetUsed() == 75 })
}
