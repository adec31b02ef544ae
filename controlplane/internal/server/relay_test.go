package server

import (
	"maps"
	"slices"
	"testing"

	"github.com/berry-gateway/berry/controlplane/internal/cache"
	berryv1 "github.com/berry-gateway/berry/pkg/api/berry/v1"
)

// replayAnnounce plays what a new relay stream starts with as the leader reads it,
// and returns the streams left open and the batches taken, by stream. It fails on a
// batch of a stream not announced, which the leader would ignore.
func replayAnnounce(t *testing.T, msgs []*berryv1.RelayRequest) (open map[uint64]string, batches map[uint64][]uint64) {
	t.Helper()
	open, batches = map[uint64]string{}, map[uint64][]uint64{}
	for _, m := range msgs {
		switch k := m.GetKind().(type) {
		case *berryv1.RelayRequest_Opened:
			open[k.Opened.GetId()] = k.Opened.GetEdgeId()
		case *berryv1.RelayRequest_Closed:
			if _, ok := open[k.Closed]; !ok {
				t.Fatalf("stream %d closed, not open", k.Closed)
			}
			delete(open, k.Closed)
		case *berryv1.RelayRequest_Batch:
			id := k.Batch.GetStream()
			if _, ok := open[id]; !ok {
				t.Fatalf("batch %d of stream %d before the stream is announced", k.Batch.GetBatch().GetSeq(), id)
			}
			batches[id] = append(batches[id], k.Batch.GetBatch().GetSeq())
		}
	}
	return open, batches
}

// After a lost relay, the new stream announces every edge stream open on the member,
// and the batches queued meanwhile with their stream, even one that has closed since.
func TestRelayAnnounce(t *testing.T) {
	b := func(seq uint64) *berryv1.ObservationBatch { return &berryv1.ObservationBatch{Seq: seq} }
	tests := []struct {
		name        string
		events      func(r *relay)
		wantOpen    map[uint64]string
		wantBatches map[uint64][]uint64
	}{
		{"streams sent before, nothing queued", func(r *relay) {
			r.opened(1, "a")
			r.opened(2, "b")
			r.take() // on the previous stream
		}, map[uint64]string{1: "a", 2: "b"}, map[uint64][]uint64{}},
		{"queued while there was no leader", func(r *relay) {
			r.opened(1, "a")
			r.opened(2, "b")
			r.take()
			r.batch(1, "a", b(7))
			r.batch(2, "b", b(3))
			r.closed(2, "b") // its batch still counts
			r.opened(3, "c")
			r.batch(3, "c", b(1))
			r.batch(1, "a", b(8))
		}, map[uint64]string{1: "a", 3: "c"}, map[uint64][]uint64{1: {7, 8}, 2: {3}, 3: {1}}},
		{"opened and closed with nothing to say", func(r *relay) {
			r.opened(4, "d")
			r.closed(4, "d")
		}, map[uint64]string{}, map[uint64][]uint64{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newRelay(nil, nil, nil, nil)
			tt.events(r)
			open, batches := replayAnnounce(t, r.announce())
			if !maps.Equal(open, tt.wantOpen) {
				t.Errorf("open after the announce: %v, want %v", open, tt.wantOpen)
			}
			if !maps.EqualFunc(batches, tt.wantBatches, slices.Equal) {
				t.Errorf("batches: %v, want %v", batches, tt.wantBatches)
			}
			if len(r.take()) != 0 {
				t.Error("the queue is not empty after the announce")
			}
		})
	}
}

// A follower without a leader keeps at most maxRelayBacklog batches, dropping the
// oldest, and keeps the streams' openings.
func TestRelayBacklogBound(t *testing.T) {
	r := newRelay(nil, nil, nil, nil)
	r.opened(1, "a")
	r.take()
	for seq := uint64(1); seq <= maxRelayBacklog+10; seq++ {
		r.batch(1, "a", &berryv1.ObservationBatch{Seq: seq})
	}
	if got := r.dropped.Load(); got != 10 {
		t.Fatalf("dropped %d, want 10", got)
	}
	_, batches := replayAnnounce(t, r.announce())
	if got := batches[1]; len(got) != maxRelayBacklog || got[0] != 11 {
		t.Fatalf("kept %d batches from seq %d, want %d from 11", len(got), got[0], maxRelayBacklog)
	}
}

// Grants relayed for an edge go down its open stream, in order; those for an edge
// with no stream open on this member are not kept.
func TestRelayedGrantsDelivery(t *testing.T) {
	q := NewQuotaService(nil, &cache.Snapshots{}, QuotaOptions{})
	q.deliver("gone", &berryv1.QuotaGrants{Seq: 1})
	if len(q.relayed) != 0 {
		t.Fatalf("grants kept for an edge without a stream: %v", q.relayed)
	}
	s := q.OpenStream("e1")
	defer s.Close()
	q.deliver("e1", &berryv1.QuotaGrants{Seq: 1})
	q.deliver("e1", &berryv1.QuotaGrants{Seq: 2})
	for _, want := range []uint64{1, 2} {
		<-s.Ready()
		if g := s.Take(); g.GetSeq() != want {
			t.Fatalf("took grants seq %d, want %d", g.GetSeq(), want)
		}
	}
	s.Close()
	if len(q.relayed) != 0 {
		t.Fatalf("grants kept after the stream closed: %v", q.relayed)
	}
}
