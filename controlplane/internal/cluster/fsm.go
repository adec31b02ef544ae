package cluster

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/berry-gateway/berry/controlplane/internal/store"
	berryv1 "github.com/berry-gateway/berry/pkg/api/berry/v1"
	"github.com/hashicorp/raft"
	"google.golang.org/protobuf/proto"
)

// fsm applies the log to the store: every node holds the same data file, entry by
// entry. The store records each entry's index with its change, so entries a restarted
// node's log replays (its file already holds them) are skipped.
type fsm struct {
	st *store.Store
	// onVersion is called with each version the log adds, in order, and with the
	// current version after a snapshot was loaded: the server publishes it to edges.
	onVersion func(*berryv1.ConfigVersion)
}

// applyResult is what Apply returns to the proposer through the future.
type applyResult struct {
	err error
}

// Apply implements raft.FSM.
func (f *fsm) Apply(l *raft.Log) any {
	if l.Type != raft.LogCommand {
		return nil
	}
	var e berryv1.RaftEntry
	if err := proto.Unmarshal(l.Data, &e); err != nil {
		// Every node refuses it alike; nothing is written.
		return applyResult{fmt.Errorf("log entry %d: %w", l.Index, err)}
	}
	ctx := context.Background()
	switch x := e.GetEntry().(type) {
	case *berryv1.RaftEntry_Version:
		written, err := f.st.PutVersion(ctx, x.Version, l.Index)
		if err != nil {
			return applyResult{err}
		}
		if written && f.onVersion != nil {
			f.onVersion(x.Version)
		}
	case *berryv1.RaftEntry_Usage:
		b := UsageBatch(x.Usage)
		b.Index = l.Index
		return applyResult{f.st.WriteUsage(ctx, b)}
	case *berryv1.RaftEntry_Purge:
		// Deleting what is past retention is idempotent: a replay deletes nothing more.
		windows := map[berryv1.QuotaDimension]int64{}
		for _, w := range x.Purge.GetWindowsBefore() {
			windows[w.GetDimension()] = w.GetWindow()
		}
		_, _, err := f.st.PurgeUsage(ctx, time.Unix(x.Purge.GetBeforeHour()*3600, 0), windows)
		return applyResult{err}
	case *berryv1.RaftEntry_Lineage:
		return applyResult{f.st.SetLineage(ctx, x.Lineage, l.Index)}
	default:
		return applyResult{fmt.Errorf("log entry %d: unknown kind", l.Index)}
	}
	return applyResult{}
}

// Snapshot implements raft.FSM: a read transaction of the file, written out by
// Persist while the log goes on being applied.
func (f *fsm) Snapshot() (raft.FSMSnapshot, error) {
	s, err := f.st.Snapshot()
	if err != nil {
		return nil, err
	}
	return fsmSnapshot{s}, nil
}

// Restore implements raft.FSM: the leader's snapshot replaces the whole file (a node
// that fell behind the compacted log, or a new member).
func (f *fsm) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	ctx := context.Background()
	if err := f.st.Load(ctx, rc); err != nil {
		return err
	}
	if f.onVersion != nil {
		v, err := f.st.Current(ctx)
		if err != nil {
			return err
		}
		if v != nil {
			f.onVersion(v)
		}
	}
	return nil
}

type fsmSnapshot struct{ s *store.ReadSnapshot }

func (s fsmSnapshot) Persist(sink raft.SnapshotSink) error {
	if _, err := s.s.WriteTo(sink); err != nil {
		_ = sink.Cancel()
		return err
	}
	return sink.Close()
}

func (s fsmSnapshot) Release() { _ = s.s.Close() }

// UsageEntry returns the log entry form of a usage batch.
func UsageEntry(b *store.UsageBatch) *berryv1.UsageEntry {
	e := &berryv1.UsageEntry{ReplaceEdges: b.ReplaceEdges}
	for k, c := range b.Usage {
		e.Rows = append(e.Rows, &berryv1.UsageLedgerRow{Hour: k.Hour, Record: &berryv1.UsageRecord{
			Key: k.Key, Model: k.Model, Provider: k.Provider, UpstreamModel: k.UpstreamModel,
			Requests: c.Requests, InputTokens: c.InputTokens, OutputTokens: c.OutputTokens,
			CachedTokens: c.CachedTokens, ReasoningTokens: c.ReasoningTokens,
			CostMicroUsd: c.CostMicroUSD, Estimated: c.Estimated,
		}})
	}
	counters := func(cs []store.QuotaCounter) []*berryv1.QuotaCounterEntry {
		out := make([]*berryv1.QuotaCounterEntry, len(cs))
		for i, c := range cs {
			out[i] = &berryv1.QuotaCounterEntry{Key: c.Key, Dimension: c.Dim, Window: c.Window, Consumed: c.Consumed}
		}
		return out
	}
	e.QuotaPut, e.QuotaDelete = counters(b.QuotaPut), counters(b.QuotaDelete)
	for _, q := range b.QuotaEdges {
		e.QuotaEdges = append(e.QuotaEdges, &berryv1.QuotaEdgeEntry{Id: q.ID, Day: q.Day})
	}
	return e
}

// UsageBatch returns the store's form of a usage entry.
func UsageBatch(e *berryv1.UsageEntry) *store.UsageBatch {
	b := &store.UsageBatch{Usage: make(map[store.UsageKey]store.UsageCounters, len(e.GetRows())), ReplaceEdges: e.GetReplaceEdges()}
	for _, r := range e.GetRows() {
		rec := r.GetRecord()
		k := store.UsageKey{Hour: r.GetHour(), Key: rec.GetKey(), Model: rec.GetModel(), Provider: rec.GetProvider(), UpstreamModel: rec.GetUpstreamModel()}
		c := b.Usage[k]
		c.Add(store.CountersOf(rec))
		b.Usage[k] = c
	}
	counters := func(cs []*berryv1.QuotaCounterEntry) []store.QuotaCounter {
		var out []store.QuotaCounter
		for _, c := range cs {
			out = append(out, store.QuotaCounter{Key: c.GetKey(), Dim: c.GetDimension(), Window: c.GetWindow(), Consumed: c.GetConsumed()})
		}
		return out
	}
	b.QuotaPut, b.QuotaDelete = counters(e.GetQuotaPut()), counters(e.GetQuotaDelete())
	for _, q := range e.GetQuotaEdges() {
		b.QuotaEdges = append(b.QuotaEdges, store.QuotaEdge{ID: q.GetId(), Day: q.GetDay()})
	}
	return b
}
