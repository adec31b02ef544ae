// Package store keeps the control plane's configuration in one bbolt file: every
// accepted change is a new, gap-free version holding the full config, written in one
// transaction that has been fsynced before the caller hears of it.
package store

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	berryv1 "github.com/berry-gateway/berry/pkg/api/berry/v1"
	bolt "go.etcd.io/bbolt"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"
)

var (
	// ErrStale is returned by Commit when the write was based on a version that is no
	// longer current.
	ErrStale = errors.New("stale write: config changed since the version it was based on")
	// ErrNotFound is returned for a version that does not exist.
	ErrNotFound = errors.New("version not found")
	// ErrLocked is returned by Open when another process holds the file.
	ErrLocked = errors.New("data file is locked by another process")
)

var (
	bucketMeta     = []byte("meta")
	bucketVersions = []byte("versions")
	keyCurrent     = []byte("current")
)

// Store is the bbolt-backed config history. It is safe for concurrent use.
type Store struct {
	db *bolt.DB
}

// Options tunes Open. The zero value is usable.
type Options struct {
	// LockTimeout bounds the wait for the file lock; default 2s, so a second control
	// plane on the same file fails fast instead of hanging.
	LockTimeout time.Duration
}

// Open opens (creating if needed) the data file at path.
func Open(path string, opts Options) (*Store, error) {
	if opts.LockTimeout <= 0 {
		opts.LockTimeout = 2 * time.Second
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: opts.LockTimeout})
	if err != nil {
		if errors.Is(err, bolt.ErrTimeout) {
			return nil, fmt.Errorf("open %s: %w", path, ErrLocked)
		}
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{bucketMeta, bucketVersions} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("init %s: %w", path, err)
	}
	return &Store{db: db}, nil
}

// Close closes the data file.
func (s *Store) Close() error { return s.db.Close() }

// CommitRequest is one change to store.
type CommitRequest struct {
	Config  *berryv1.Config
	Author  string
	Message string
	// ExpectedVersion, when non-zero, makes the commit fail with ErrStale unless the
	// current version is exactly this one.
	ExpectedVersion uint64
	// IfEmpty makes the commit a no-op (returning the current version and false) when
	// the store already holds a version: used for bootstrap imports.
	IfEmpty bool
}

// Commit stores req.Config as version current+1 and returns it once the transaction
// has committed to disk. The config must already be validated. created is false when
// IfEmpty found an existing version.
func (s *Store) Commit(ctx context.Context, req CommitRequest) (v *berryv1.ConfigVersion, created bool, err error) {
	if err := ctx.Err(); err != nil {
		return nil, false, err
	}
	err = s.db.Update(func(tx *bolt.Tx) error {
		cur := current(tx)
		if req.IfEmpty && cur != 0 {
			v, err = get(tx, cur)
			return err
		}
		if req.ExpectedVersion != 0 && req.ExpectedVersion != cur {
			return fmt.Errorf("%w (based on %d, current is %d)", ErrStale, req.ExpectedVersion, cur)
		}
		v = &berryv1.ConfigVersion{
			Version:   cur + 1,
			CreatedAt: timestamppb.Now(),
			Author:    req.Author,
			Message:   req.Message,
			Config:    req.Config,
		}
		buf, err := proto.MarshalOptions{Deterministic: true}.Marshal(v)
		if err != nil {
			return fmt.Errorf("marshal version: %w", err)
		}
		if err := tx.Bucket(bucketVersions).Put(versionKey(v.Version), buf); err != nil {
			return err
		}
		created = true
		return tx.Bucket(bucketMeta).Put(keyCurrent, versionKey(v.Version))
	})
	if err != nil {
		return nil, false, err
	}
	return v, created, nil
}

// Current returns the current version, or nil when the store is empty.
func (s *Store) Current(ctx context.Context) (*berryv1.ConfigVersion, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	var v *berryv1.ConfigVersion
	err := s.db.View(func(tx *bolt.Tx) error {
		cur := current(tx)
		if cur == 0 {
			return nil
		}
		var err error
		v, err = get(tx, cur)
		return err
	})
	return v, err
}

// Get returns one version.
func (s *Store) Get(ctx context.Context, version uint64) (*berryv1.ConfigVersion, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	var v *berryv1.ConfigVersion
	err := s.db.View(func(tx *bolt.Tx) error {
		var err error
		v, err = get(tx, version)
		return err
	})
	return v, err
}

func current(tx *bolt.Tx) uint64 {
	b := tx.Bucket(bucketMeta).Get(keyCurrent)
	if len(b) != 8 {
		return 0
	}
	return binary.BigEndian.Uint64(b)
}

func get(tx *bolt.Tx, version uint64) (*berryv1.ConfigVersion, error) {
	raw := tx.Bucket(bucketVersions).Get(versionKey(version))
	if raw == nil {
		return nil, fmt.Errorf("version %d: %w", version, ErrNotFound)
	}
	v := &berryv1.ConfigVersion{}
	if err := proto.Unmarshal(raw, v); err != nil {
		return nil, fmt.Errorf("version %d: corrupt record: %w", version, err)
	}
	return v, nil
}

// versionKey is big-endian so bbolt's byte order is version order.
func versionKey(v uint64) []byte {
	var k [8]byte
	binary.BigEndian.PutUint64(k[:], v)
	return k[:]
}
