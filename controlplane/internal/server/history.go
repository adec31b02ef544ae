package server

import (
	"context"
	"time"

	"github.com/berry-gateway/berry/controlplane/internal/scorehistory"
	berryv1 "github.com/berry-gateway/berry/pkg/api/berry/v1"
	"github.com/berry-gateway/berry/pkg/config"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"
)

// sampleScores adds the latest fleet scores to the history every interval until ctx
// ends.
func (a *AdminService) sampleScores(ctx context.Context) {
	t := time.NewTicker(a.history.Interval())
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			if latest, _ := a.scores.Watch(); latest != nil {
				a.history.Add(now, latest)
			}
		}
	}
}

// GetScoreHistory implements berryv1.AdminServiceServer: the sampled fleet scores of
// the last hour per backend, each with the current config's models that route to it.
func (a *AdminService) GetScoreHistory(_ context.Context, req *berryv1.GetScoreHistoryRequest) (*berryv1.GetScoreHistoryResponse, error) {
	var since time.Time
	if s := req.GetSince(); s != nil {
		if err := s.CheckValid(); err != nil {
			return nil, status.Errorf(codes.InvalidArgument, "since: %v", err)
		}
		since = s.AsTime()
	}
	routes := a.modelsByBackend()
	var keep func(config.BackendKey) bool
	if m := req.GetModel(); m != "" {
		want := a.backendsOf(m)
		keep = func(k config.BackendKey) bool { return want[k] }
	}
	resp := &berryv1.GetScoreHistoryResponse{
		Interval: durationpb.New(a.history.Interval()),
		Span:     durationpb.New(a.history.Span()),
		Backends: scorehistory.Series(a.history.Since(since), keep),
	}
	for _, b := range resp.Backends {
		b.Models = routes[config.BackendKey{Provider: b.GetProvider(), Model: b.GetUpstreamModel()}]
	}
	return resp, nil
}

// backendsOf returns the backends of the current config's model whose id or name is
// model.
func (a *AdminService) backendsOf(model string) map[config.BackendKey]bool {
	want := map[config.BackendKey]bool{}
	snap, _ := a.snapshots.Watch()
	for _, mod := range snap.GetConfig().GetModels() {
		if mod.GetId() != model && mod.GetName() != model {
			continue
		}
		for _, b := range mod.GetBackends() {
			want[config.BackendKey{Provider: b.GetProvider(), Model: b.GetModel()}] = true
		}
	}
	return want
}

// modelsByBackend returns, per backend of the current config, the ids of the models
// that route to it.
func (a *AdminService) modelsByBackend() map[config.BackendKey][]string {
	out := map[config.BackendKey][]string{}
	snap, _ := a.snapshots.Watch()
	for _, mod := range snap.GetConfig().GetModels() {
		for _, b := range mod.GetBackends() {
			k := config.BackendKey{Provider: b.GetProvider(), Model: b.GetModel()}
			if ms := out[k]; len(ms) == 0 || ms[len(ms)-1] != mod.GetId() {
				out[k] = append(ms, mod.GetId())
			}
		}
	}
	return out
}
