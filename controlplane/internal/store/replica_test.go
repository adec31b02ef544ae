package store

import (
	"bytes"
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	berryv1 "github.com/berry-gateway/berry/pkg/api/berry/v1"
)

func openReplica(t *testing.T) *Store {
	t.Helper()
	s, err := Open(filepath.Join(t.TempDir(), "berry.db"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// TestReplicaEntries applies log entries as a replica does: each once, in order, a
// stale version refused the same way on every replay, and the usage ledger never
// counted twice when the log replays entries the file holds.
func TestReplicaEntries(t *testing.T) {
	ctx := context.Background()
	s := openReplica(t)
	v1 := &berryv1.ConfigVersion{Version: 1, Author: "a", Config: &berryv1.Config{}}
	v3 := &berryv1.ConfigVersion{Version: 3, Author: "a", Config: &berryv1.Config{}}
	usage := func(index uint64) *UsageBatch {
		return &UsageBatch{Index: index, Usage: map[UsageKey]UsageCounters{{Hour: 10, Key: "k"}: {Requests: 2}}}
	}
	steps := []struct {
		name    string
		apply   func() error
		applied uint64
		current uint64
		reqs    uint64
	}{
		{"version 1 at index 2", func() error { _, err := s.PutVersion(ctx, v1, 2); return err }, 2, 1, 0},
		{"replayed index 2 is skipped", func() error {
			w, err := s.PutVersion(ctx, v1, 2)
			if w {
				return errors.New("replay written")
			}
			return err
		}, 2, 1, 0},
		{"version 3 after 1 is stale", func() error {
			_, err := s.PutVersion(ctx, v3, 3)
			if !errors.Is(err, ErrStale) {
				return errors.New("want ErrStale, got " + errString(err))
			}
			return nil
		}, 3, 1, 0},
		{"usage at index 4", func() error { return s.WriteUsage(ctx, usage(4)) }, 4, 1, 2},
		{"usage replayed at index 4", func() error { return s.WriteUsage(ctx, usage(4)) }, 4, 1, 2},
		{"usage at index 5", func() error { return s.WriteUsage(ctx, usage(5)) }, 5, 1, 4},
	}
	for _, st := range steps {
		if err := st.apply(); err != nil {
			t.Fatalf("%s: %v", st.name, err)
		}
		idx, err := s.AppliedIndex(ctx)
		if err != nil || idx != st.applied {
			t.Fatalf("%s: applied index %d (%v), want %d", st.name, idx, err, st.applied)
		}
		cur, _ := s.Current(ctx)
		if cur.GetVersion() != st.current {
			t.Fatalf("%s: current %d, want %d", st.name, cur.GetVersion(), st.current)
		}
		rows, err := s.Usage(ctx, UsageQuery{Until: time.Unix(1<<40, 0)})
		if err != nil {
			t.Fatal(err)
		}
		var reqs uint64
		for _, r := range rows {
			reqs += r.Requests
		}
		if reqs != st.reqs {
			t.Fatalf("%s: %d requests in the ledger, want %d", st.name, reqs, st.reqs)
		}
	}
}

func errString(err error) string {
	if err == nil {
		return "nil"
	}
	return err.Error()
}

// TestReplicaLoad copies one replica's state into another through Snapshot and Load:
// versions, ledger, applied index and lineage all arrive.
func TestReplicaLoad(t *testing.T) {
	ctx := context.Background()
	a, b := openReplica(t), openReplica(t)
	if err := a.SetLineage(ctx, "cluster-lineage", 1); err != nil {
		t.Fatal(err)
	}
	if _, err := a.PutVersion(ctx, &berryv1.ConfigVersion{Version: 1, Config: &berryv1.Config{}}, 2); err != nil {
		t.Fatal(err)
	}
	if got, _ := a.ClusterLineage(ctx); got != "cluster-lineage" {
		t.Fatalf("cluster lineage %q", got)
	}
	if _, err := b.PutVersion(ctx, &berryv1.ConfigVersion{Version: 1, Config: &berryv1.Config{}}, 9); err != nil {
		t.Fatal(err)
	}
	snap, err := a.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if _, err := snap.WriteTo(&buf); err != nil {
		t.Fatal(err)
	}
	snap.Close()
	if err := b.Load(ctx, &buf); err != nil {
		t.Fatal(err)
	}
	if b.Lineage() != "cluster-lineage" {
		t.Fatalf("lineage after load %q", b.Lineage())
	}
	if idx, _ := b.AppliedIndex(ctx); idx != 2 {
		t.Fatalf("applied index after load %d, want 2", idx)
	}
	if err := b.Load(ctx, bytes.NewReader([]byte("not a data file"))); err == nil {
		t.Fatal("loading garbage succeeded")
	}
	if cur, _ := b.Current(ctx); cur.GetVersion() != 1 {
		t.Fatalf("a failed load changed the state: current %d", cur.GetVersion())
	}
}
