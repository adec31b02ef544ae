package server

import (
	"math"
	"testing"
	"time"

	"github.com/berry-gateway/berry/controlplane/internal/quota"
	berryv1 "github.com/berry-gateway/berry/pkg/api/berry/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// The fleet's scores are sampled into the history that GetScoreHistory reads, per
// backend with the models routing to it, filtered by model and time.
func TestScoreHistory(t *testing.T) {
	h := startWith(t, Options{ScoreInterval: 10 * time.Millisecond, ScoreHistoryInterval: 20 * time.Millisecond})
	h.seed(t)
	stream, _ := openSync(t, h, &berryv1.Hello{EdgeId: "e1"})
	read := h.admin(t, readTok)
	obs := &berryv1.ObservationBatch{Backends: []*berryv1.BackendObservation{{Provider: "openai", UpstreamModel: "gpt-4o",
		LatencySeconds: 0.25, TtftSeconds: 0.1, Samples: 10, Requests: 20, ServerErrors: 2}}}
	var hist *berryv1.BackendScoreHistory
	deadline := time.Now().Add(20 * time.Second)
	for hist == nil || len(hist.GetSamples()) < 3 {
		if time.Now().After(deadline) {
			t.Fatalf("no history of three samples: %v", hist)
		}
		sendBatch(t, stream, obs)
		time.Sleep(20 * time.Millisecond)
		r, err := read.GetScoreHistory(ctxT(t), &berryv1.GetScoreHistoryRequest{})
		if err != nil {
			t.Fatal(err)
		}
		if r.GetInterval().AsDuration() != 20*time.Millisecond || r.GetSpan().AsDuration() != time.Hour {
			t.Fatalf("interval %v span %v", r.GetInterval().AsDuration(), r.GetSpan().AsDuration())
		}
		for _, b := range r.GetBackends() {
			if b.GetProvider() == "openai" && b.GetUpstreamModel() == "gpt-4o" {
				hist = b
			}
		}
	}
	if len(hist.GetModels()) != 1 || hist.GetModels()[0] != "gpt" {
		t.Fatalf("models %v", hist.GetModels())
	}
	var last time.Time
	for _, s := range hist.GetSamples() {
		if !s.GetTime().AsTime().After(last) {
			t.Fatalf("samples not oldest first: %v", hist.GetSamples())
		}
		last = s.GetTime().AsTime()
	}
	s := hist.GetSamples()[len(hist.GetSamples())-1]
	if s.GetLatencySeconds() != 0.25 || s.GetTtftSeconds() != 0.1 || s.GetEdges() != 1 || s.GetRequests() <= 0 || s.GetErrorRate() <= 0 {
		t.Fatalf("last sample %v", s)
	}

	for _, tc := range []struct {
		name string
		req  *berryv1.GetScoreHistoryRequest
		want int // backends
	}{
		{"by model id", &berryv1.GetScoreHistoryRequest{Model: "gpt"}, 1},
		{"unknown model", &berryv1.GetScoreHistoryRequest{Model: "nope"}, 0},
		{"since the future", &berryv1.GetScoreHistoryRequest{Since: timestamppb.New(time.Now().Add(time.Hour))}, 0},
		{"since the last sample", &berryv1.GetScoreHistoryRequest{Since: s.GetTime()}, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, err := read.GetScoreHistory(ctxT(t), tc.req)
			if err != nil || len(r.GetBackends()) != tc.want {
				t.Fatalf("%v, %v", r, err)
			}
		})
	}
	_, err := read.GetScoreHistory(ctxT(t), &berryv1.GetScoreHistoryRequest{Since: &timestamppb.Timestamp{Nanos: -1}})
	wantCode(t, "invalid since", err, codes.InvalidArgument)
	_, err = h.admin(t, edgeTok).GetScoreHistory(ctxT(t), &berryv1.GetScoreHistoryRequest{})
	wantCode(t, "GetScoreHistory as edge", err, codes.PermissionDenied)
}

// GetQuotas says how near each key is to its limits, and min_used_fraction keeps the
// keys near one.
func TestQuotasNearLimit(t *testing.T) {
	h := startWith(t, fastQuotas)
	h.apply(t, quotaSeed)
	stream, _ := openSync(t, h, &berryv1.Hello{EdgeId: "e1"})
	sendBatch(t, stream, &berryv1.ObservationBatch{Seq: 1, Instance: "p", Usage: []*berryv1.UsageRecord{usageRecord(60, 1000)},
		Quota: []*berryv1.QuotaReport{{Key: "alice", Dimension: rpd, Window: quota.Window(rpd, time.Now()), Consumed: 60, Demand: 60, Balance: -1}}})
	waitQuota(t, h, "alice", func(u *berryv1.QuotaUse) bool { return u.GetUsed() == 60 })
	read := h.admin(t, readTok)
	for _, tc := range []struct {
		near float64
		want []string
	}{
		{0, []string{"alice"}},
		{0.5, []string{"alice"}},
		{0.6, []string{"alice"}},
		{0.61, nil},
		{1, nil},
	} {
		q, err := read.GetQuotas(ctxT(t), &berryv1.GetQuotasRequest{MinUsedFraction: tc.near})
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, k := range q.GetKeys() {
			got = append(got, k.GetKey())
			if k.GetMaxUsedFraction() != 0.6 {
				t.Fatalf("near %v: %s max used fraction %v, want 0.6", tc.near, k.GetKey(), k.GetMaxUsedFraction())
			}
		}
		if len(got) != len(tc.want) || (len(got) == 1 && got[0] != tc.want[0]) {
			t.Fatalf("near %v: keys %v, want %v", tc.near, got, tc.want)
		}
	}
	// A key without limits, asked by name, is 0 used.
	if q, err := read.GetQuotas(ctxT(t), &berryv1.GetQuotasRequest{Key: "bob"}); err != nil || q.GetKeys()[0].GetMaxUsedFraction() != 0 {
		t.Fatalf("bob: %v, %v", q, err)
	}
	for _, bad := range []float64{-0.1, math.NaN(), math.Inf(1)} {
		_, err := read.GetQuotas(ctxT(t), &berryv1.GetQuotasRequest{MinUsedFraction: bad})
		wantCode(t, "min_used_fraction", err, codes.InvalidArgument)
	}
}
