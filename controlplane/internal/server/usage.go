package server

import (
	"context"
	"math"
	"time"

	"github.com/berry-gateway/berry/controlplane/internal/quota"
	"github.com/berry-gateway/berry/controlplane/internal/store"
	berryv1 "github.com/berry-gateway/berry/pkg/api/berry/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// defaultUsageSpan is what GetUsage reads when since is unset: the day before until.
const defaultUsageSpan = 24 * time.Hour

// noQuotas answers GetQuotas for an admin service without quota state: the limits,
// nothing used.
var noQuotas = quota.New(quota.Options{})

// GetUsage implements berryv1.AdminServiceServer: the ledger's rows of the hours
// overlapping [since, until), filtered by key and model, summed per group.
func (a *AdminService) GetUsage(ctx context.Context, req *berryv1.GetUsageRequest) (*berryv1.GetUsageResponse, error) {
	var g store.UsageGroup
	for _, col := range req.GetGroupBy() {
		switch col {
		case "key":
			g.Key = true
		case "model":
			g.Model = true
		case "backend":
			g.Backend = true
		case "hour":
			g.Hour = true
		default:
			return nil, status.Errorf(codes.InvalidArgument, "group_by %q: use key, model, backend or hour", col)
		}
	}
	until := time.Now()
	if u := req.GetUntil(); u != nil {
		if err := u.CheckValid(); err != nil {
			return nil, status.Errorf(codes.InvalidArgument, "until: %v", err)
		}
		until = u.AsTime()
	}
	since := until.Add(-defaultUsageSpan)
	if s := req.GetSince(); s != nil {
		if err := s.CheckValid(); err != nil {
			return nil, status.Errorf(codes.InvalidArgument, "since: %v", err)
		}
		since = s.AsTime()
	}
	if !since.Before(until) {
		return nil, status.Error(codes.InvalidArgument, "since: must be before until")
	}
	rows, err := a.store.Usage(ctx, store.UsageQuery{Since: since, Until: until, Key: req.GetKey(), Model: req.GetModel(), Group: g})
	if err != nil {
		return nil, toStatus(err)
	}
	out := &berryv1.GetUsageResponse{Rows: make([]*berryv1.UsageRow, len(rows))}
	for i, r := range rows {
		row := &berryv1.UsageRow{
			Key: r.Key, Model: r.Model, Backend: r.Backend,
			Requests: r.Requests, PromptTokens: r.InputTokens, CompletionTokens: r.OutputTokens,
			CachedTokens: r.CachedTokens, ReasoningTokens: r.ReasoningTokens,
			CostUsd: float64(r.CostMicroUSD) / 1e6, Estimated: r.Estimated,
		}
		if g.Hour {
			row.Hour = timestamppb.New(r.Hour)
		}
		out.Rows[i] = row
	}
	return out, nil
}

// GetQuotas implements berryv1.AdminServiceServer: per key with fleet limits (one
// key when asked, whether or not it has any), each limit of the current config with
// what the fleet used of it and the credit outstanding in the current window, and
// the highest share used; with min_used_fraction, only the keys that near a limit.
func (a *AdminService) GetQuotas(ctx context.Context, req *berryv1.GetQuotasRequest) (*berryv1.GetQuotasResponse, error) {
	if a.cluster != nil && !a.cluster.replica.Leading() {
		// The leases are the leader's: a follower holds none.
		return nil, toStatus(a.cluster.notLeader(ctx))
	}
	near := req.GetMinUsedFraction()
	if math.IsNaN(near) || math.IsInf(near, 0) || near < 0 {
		return nil, status.Errorf(codes.InvalidArgument, "min_used_fraction: must be a finite share of at least 0 (e.g. 0.8), got %v", near)
	}
	snap, _ := a.snapshots.Watch()
	users := snap.GetConfig().GetUsers()
	if id := req.GetKey(); id != "" {
		u, err := find(users, "user", id)
		if err != nil {
			return nil, err
		}
		users = []*berryv1.User{u}
	}
	out := &berryv1.GetQuotasResponse{}
	for _, u := range users {
		lim := quota.LimitsOf(u)
		if !lim.Any() && req.GetKey() == "" {
			continue
		}
		kq := &berryv1.KeyQuota{Key: u.GetId()}
		eng := noQuotas
		if a.quota != nil {
			eng, _ = a.quota.eng()
		}
		for _, use := range eng.Uses(u.GetId(), lim) {
			kq.Limits = append(kq.Limits, &berryv1.QuotaUse{Dimension: use.Dim, Limit: use.Limit, Used: use.Used,
				Outstanding: use.Outstanding, WindowEnd: timestamppb.New(use.WindowEnd)})
			if use.Limit > 0 {
				kq.MaxUsedFraction = max(kq.MaxUsedFraction, float64(use.Used)/float64(use.Limit))
			}
		}
		if near > 0 && kq.MaxUsedFraction < near {
			continue
		}
		out.Keys = append(out.Keys, kq)
	}
	return out, nil
}
