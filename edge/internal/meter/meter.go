// Package meter sums the usage of the edge's requests per key, model and backend
// between two observation batches: what the control plane's usage ledger is made of.
package meter

import (
	"sync"

	berryv1 "github.com/berry-gateway/berry/pkg/api/berry/v1"
	"github.com/berry-gateway/berry/pkg/config"
)

// Usage is one request's usage as the edge settled it: known counts, or the edge's
// estimate (Estimated).
type Usage struct {
	Input, Output, Cached, Reasoning int64
	CostMicroUSD                     int64
	Estimated                        bool
}

type rowKey struct {
	key, model string
	backend    config.BackendKey
}

// Meter is safe for concurrent use; the zero value is ready.
type Meter struct {
	mu   sync.Mutex
	rows map[rowKey]*berryv1.UsageRecord
}

// Add counts one request of key (the user id) to model (its id) served by backend.
func (m *Meter) Add(key, model string, backend config.BackendKey, u Usage) {
	k := rowKey{key, model, backend}
	m.mu.Lock()
	r := m.rows[k]
	if r == nil {
		if m.rows == nil {
			m.rows = make(map[rowKey]*berryv1.UsageRecord)
		}
		r = &berryv1.UsageRecord{Key: key, Model: model, Provider: backend.Provider, UpstreamModel: backend.Model}
		m.rows[k] = r
	}
	r.Requests++
	r.InputTokens += uint64(max(u.Input, 0))
	r.OutputTokens += uint64(max(u.Output, 0))
	r.CachedTokens += uint64(max(u.Cached, 0))
	r.ReasoningTokens += uint64(max(u.Reasoning, 0))
	r.CostMicroUsd += uint64(max(u.CostMicroUSD, 0))
	if u.Estimated {
		r.Estimated++
	}
	m.mu.Unlock()
}

// Drain returns what was counted since the previous Drain and starts over.
func (m *Meter) Drain() []*berryv1.UsageRecord {
	m.mu.Lock()
	rows := m.rows
	m.rows = nil
	m.mu.Unlock()
	out := make([]*berryv1.UsageRecord, 0, len(rows))
	for _, r := range rows {
		out = append(out, r)
	}
	return out
}

// Merge adds records that could not be sent back into the meter, so a batch the
// stream refused is counted in the next one.
func (m *Meter) Merge(recs []*berryv1.UsageRecord) {
	for _, x := range recs {
		k := rowKey{x.GetKey(), x.GetModel(), config.BackendKey{Provider: x.GetProvider(), Model: x.GetUpstreamModel()}}
		m.mu.Lock()
		r := m.rows[k]
		if r == nil {
			if m.rows == nil {
				m.rows = make(map[rowKey]*berryv1.UsageRecord)
			}
			m.rows[k] = x
			m.mu.Unlock()
			continue
		}
		r.Requests += x.GetRequests()
		r.InputTokens += x.GetInputTokens()
		r.OutputTokens += x.GetOutputTokens()
		r.CachedTokens += x.GetCachedTokens()
		r.ReasoningTokens += x.GetReasoningTokens()
		r.CostMicroUsd += x.GetCostMicroUsd()
		r.Estimated += x.GetEstimated()
		m.mu.Unlock()
	}
}
