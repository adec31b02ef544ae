package store

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	berryv1 "github.com/berry-gateway/berry/pkg/api/berry/v1"
	bolt "go.etcd.io/bbolt"
)

// A replicated control plane applies every change as an entry of its Raft log, on
// every node, in log order. The store records the index of the last entry it
// applied in the same transaction as the change, because the data file outlives the
// process: a restarted node's log replays entries its file already holds, and the
// ledger's counters are added, so an entry must never be applied twice.
var (
	keyApplied = []byte("raft_applied")
	// keyClusterLineage is the lineage the cluster's log has set (SetLineage). A
	// file whose own lineage differs (a new file, a restored one) has not had it set
	// by its cluster yet.
	keyClusterLineage = []byte("cluster_lineage")
)

// AppliedIndex returns the index of the last log entry applied to the file (0: none).
func (s *Store) AppliedIndex(ctx context.Context) (uint64, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	var n uint64
	err := s.db.View(func(tx *bolt.Tx) error {
		n = applied(tx)
		return nil
	})
	return n, err
}

func applied(tx *bolt.Tx) uint64 { return metaNumber(tx, keyApplied) }

// markApplied records index as applied in tx, and reports whether the entry is new:
// false when the file already holds it (index 0 is not a log entry: always new).
func markApplied(tx *bolt.Tx, index uint64) (bool, error) {
	if index == 0 {
		return true, nil
	}
	if index <= applied(tx) {
		return false, nil
	}
	return true, tx.Bucket(bucketMeta).Put(keyApplied, versionKey(index))
}

// ResetApplied forgets the applied index: for a file that starts a new log (a new
// cluster bootstrapped on it), whose indexes begin again at 1.
func (s *Store) ResetApplied(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return s.db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bucketMeta).Delete(keyApplied) })
}

// PutVersion stores v, the version a leader prepared, as log entry index. It is
// refused with ErrStale unless the current version is the one before v, so that every
// replica refuses the same entries; an entry the file already holds is skipped.
// applied is false when nothing was written.
func (s *Store) PutVersion(ctx context.Context, v *berryv1.ConfigVersion, index uint64) (written bool, err error) {
	if err := ctx.Err(); err != nil {
		return false, err
	}
	err = s.db.Update(func(tx *bolt.Tx) error {
		fresh, err := markApplied(tx, index)
		if err != nil || !fresh {
			return err
		}
		if cur := current(tx); cur+1 != v.GetVersion() {
			// The refusal is recorded as applied: the entry is not replayed.
			return errStaleEntry{fmt.Errorf("%w (version %d proposed, current is %d)", ErrStale, v.GetVersion(), cur)}
		}
		written = true
		return put(tx, v)
	})
	var stale errStaleEntry
	if errors.As(err, &stale) {
		// Commit the applied index without the version: a refused entry stays refused.
		if _, merr := s.markOnly(index); merr != nil {
			return false, merr
		}
		return false, stale.error
	}
	return written, err
}

type errStaleEntry struct{ error }

func (e errStaleEntry) Unwrap() error { return e.error }

func (s *Store) markOnly(index uint64) (bool, error) {
	var fresh bool
	err := s.db.Update(func(tx *bolt.Tx) error {
		var err error
		fresh, err = markApplied(tx, index)
		return err
	})
	return fresh, err
}

// ClusterLineage returns the lineage the cluster's log set on this file, or "" when
// none did (or the file's own lineage has changed since: a restored file).
func (s *Store) ClusterLineage(ctx context.Context) (string, error) {
	if err := ctx.Err(); err != nil {
		return "", err
	}
	var l string
	err := s.db.View(func(tx *bolt.Tx) error {
		meta := tx.Bucket(bucketMeta)
		if c := meta.Get(keyClusterLineage); string(c) == string(meta.Get(keyLineage)) {
			l = string(c)
		}
		return nil
	})
	return l, err
}

// SetLineage makes lineage the file's, as log entry index: the first leader of a
// cluster sets its own file's lineage, so that every replica's snapshots carry the
// same one and edges can move between nodes without taking a snapshot again.
func (s *Store) SetLineage(ctx context.Context, lineage string, index uint64) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if lineage == "" {
		return errors.New("set lineage: empty lineage")
	}
	err := s.db.Update(func(tx *bolt.Tx) error {
		fresh, err := markApplied(tx, index)
		if err != nil || !fresh {
			return err
		}
		meta := tx.Bucket(bucketMeta)
		if err := meta.Put(keyLineage, []byte(lineage)); err != nil {
			return err
		}
		return meta.Put(keyClusterLineage, []byte(lineage))
	})
	if err != nil {
		return err
	}
	s.reloadLineage()
	return nil
}

func (s *Store) reloadLineage() {
	_ = s.db.View(func(tx *bolt.Tx) error {
		l := string(tx.Bucket(bucketMeta).Get(keyLineage))
		s.lineage.Store(&l)
		return nil
	})
}

// ReadSnapshot is one committed state of the file, held open (a bbolt read
// transaction) until Close: what a Raft snapshot persists while writes go on.
type ReadSnapshot struct{ tx *bolt.Tx }

// Snapshot opens a ReadSnapshot of the current state.
func (s *Store) Snapshot() (*ReadSnapshot, error) {
	tx, err := s.db.Begin(false)
	if err != nil {
		return nil, err
	}
	return &ReadSnapshot{tx: tx}, nil
}

// WriteTo writes the whole file as of the snapshot.
func (r *ReadSnapshot) WriteTo(w io.Writer) (int64, error) { return r.tx.WriteTo(w) }

// Close releases the snapshot.
func (r *ReadSnapshot) Close() error { return r.tx.Rollback() }

// Load replaces everything the file holds with the data file read from r (a
// Snapshot's or a Backup's bytes), in one transaction: readers see the old state or
// the new one, never a mix. A replica that fell behind the leader's compacted log is
// brought up to date this way.
func (s *Store) Load(ctx context.Context, r io.Reader) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(s.path), ".load-*")
	if err != nil {
		return fmt.Errorf("load: %w", err)
	}
	defer os.Remove(tmp.Name())
	_, err = io.Copy(tmp, r)
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("load: %w", err)
	}
	src, err := bolt.Open(tmp.Name(), 0o600, &bolt.Options{ReadOnly: true})
	if err != nil {
		return fmt.Errorf("load: not a data file: %w", err)
	}
	defer src.Close()
	err = src.View(func(from *bolt.Tx) error {
		if from.Bucket(bucketMeta) == nil || from.Bucket(bucketVersions) == nil {
			return errors.New("not a Berry data file")
		}
		return s.db.Update(func(to *bolt.Tx) error {
			var names [][]byte
			if err := to.ForEach(func(name []byte, _ *bolt.Bucket) error {
				names = append(names, append([]byte(nil), name...))
				return nil
			}); err != nil {
				return err
			}
			for _, n := range names {
				if err := to.DeleteBucket(n); err != nil {
					return err
				}
			}
			return from.ForEach(func(name []byte, b *bolt.Bucket) error {
				nb, err := to.CreateBucket(name)
				if err != nil {
					return err
				}
				return copyBucket(nb, b)
			})
		})
	})
	if err != nil {
		return fmt.Errorf("load: %w", err)
	}
	s.reloadLineage()
	return nil
}

func copyBucket(to, from *bolt.Bucket) error {
	return from.ForEach(func(k, v []byte) error {
		if v != nil {
			return to.Put(k, v)
		}
		nb, err := to.CreateBucket(k)
		if err != nil {
			return err
		}
		return copyBucket(nb, from.Bucket(k))
	})
}
