// Package store keeps the control plane's configuration in one bbolt file: every
// accepted change is a new, gap-free version holding the full config, written in one
// transaction that has been fsynced before the caller hears of it.
package store

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync/atomic"
	"time"

	berryv1 "github.com/berry-gateway/berry/pkg/api/berry/v1"
	"github.com/berry-gateway/berry/pkg/atomicfile"
	bolt "go.etcd.io/bbolt"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"
)

var (
	// ErrStale is returned by Update when the write was based on a version that is no
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
	keyLineage     = []byte("lineage")
)

// Store is the bbolt-backed config history. It is safe for concurrent use.
type Store struct {
	db      *bolt.DB
	path    string
	lineage atomic.Pointer[string] // replaced when a replica's state is loaded from a snapshot
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
	db, err := openLocked(path, opts.LockTimeout)
	if err != nil {
		if errors.Is(err, bolt.ErrTimeout) {
			return nil, fmt.Errorf("open %s: %w", path, ErrLocked)
		}
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	var lineage string
	err = db.Update(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{bucketMeta, bucketVersions} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		meta := tx.Bucket(bucketMeta)
		if l := meta.Get(keyLineage); len(l) > 0 {
			lineage = string(l)
			return nil
		}
		lineage = newLineage()
		return meta.Put(keyLineage, []byte(lineage))
	})
	if err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("init %s: %w", path, err)
	}
	s := &Store{db: db, path: path}
	s.lineage.Store(&lineage)
	return s, nil
}

// maxReopens bounds how often Open follows a path that keeps being replaced.
const maxReopens = 5

// Test hooks: testHookOpenFile runs once Open has opened the data file, before it
// waits for its lock; testHookBeforeRename runs in Restore just before the rename.
var testHookOpenFile, testHookBeforeRename func()

// openLocked opens and locks the bbolt file at path, and makes sure the file locked
// is still the one path names. Restore renames a new file over the path while it
// holds the old one's lock: a process that opened the old file and waited for that
// lock would otherwise go on writing to a file no path names.
func openLocked(path string, timeout time.Duration) (*bolt.DB, error) {
	for range maxReopens {
		var opened *os.File
		db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: timeout, OpenFile: func(name string, flag int, perm os.FileMode) (*os.File, error) {
			f, err := os.OpenFile(name, flag, perm)
			opened = f
			if testHookOpenFile != nil {
				testHookOpenFile()
			}
			return f, err
		}})
		if err != nil {
			return nil, err
		}
		same, err := names(path, opened)
		if err != nil {
			_ = db.Close()
			return nil, err
		}
		if same {
			return db, nil
		}
		if err := db.Close(); err != nil {
			return nil, err
		}
	}
	return nil, fmt.Errorf("the file was replaced %d times while it was being opened", maxReopens)
}

// names reports whether path names the open file f.
func names(path string, f *os.File) (bool, error) {
	fi, err := f.Stat()
	if err != nil {
		return false, err
	}
	pi, err := os.Stat(path)
	if errors.Is(err, os.ErrNotExist) {
		return false, nil // removed since: open it (again) to create it
	}
	if err != nil {
		return false, err
	}
	return os.SameFile(fi, pi), nil
}

// Lineage identifies this data file's version history: version numbers are only
// comparable between snapshots of one lineage. It is created with the file and
// renewed by Restore, because a restored file may hold lower versions than edges do.
func (s *Store) Lineage() string { return *s.lineage.Load() }

func newLineage() string {
	var b [12]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails on supported platforms
	return hex.EncodeToString(b[:])
}

// Close closes the data file.
func (s *Store) Close() error { return s.db.Close() }

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

func current(tx *bolt.Tx) uint64 { return metaNumber(tx, keyCurrent) }

// metaNumber reads a big-endian uint64 of the meta bucket; 0 when it is not set.
func metaNumber(tx *bolt.Tx, key []byte) uint64 {
	b := tx.Bucket(bucketMeta).Get(key)
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

// UpdateRequest is a read-modify-write of the current config.
type UpdateRequest struct {
	// Mutate changes cfg (a private copy of the current config, never nil; empty on an
	// empty store) in place. An error aborts the update and is returned as is.
	Mutate  func(cfg *berryv1.Config) error
	Author  string
	Message string
	// ExpectedVersion, when non-zero, makes the update fail with ErrStale unless the
	// current version is exactly this one.
	ExpectedVersion uint64
	// IfEmpty makes the update a no-op (returning the current version and false) when
	// the store already holds a version: used for bootstrap imports.
	IfEmpty bool
}

// Update applies req.Mutate to the current config and stores the result as the next
// version, reading and writing in one transaction so no concurrent write can slip in
// between, and returns it once the transaction has committed to disk. Mutate must
// leave a valid config (it validates, the store does not). created is false when
// IfEmpty found an existing version.
func (s *Store) Update(ctx context.Context, req UpdateRequest) (v *berryv1.ConfigVersion, created bool, err error) {
	if err := ctx.Err(); err != nil {
		return nil, false, err
	}
	err = s.db.Update(func(tx *bolt.Tx) error {
		v, created, err = prepare(tx, req)
		if err != nil || !created {
			return err
		}
		return put(tx, v)
	})
	if err != nil {
		return nil, false, err
	}
	return v, created, nil
}

// Prepare computes the version Update would write, without writing it: a replicated
// control plane's leader proposes it to the log, and every replica then applies it
// with PutVersion.
func (s *Store) Prepare(ctx context.Context, req UpdateRequest) (v *berryv1.ConfigVersion, created bool, err error) {
	if err := ctx.Err(); err != nil {
		return nil, false, err
	}
	err = s.db.View(func(tx *bolt.Tx) error {
		v, created, err = prepare(tx, req)
		return err
	})
	if err != nil {
		return nil, false, err
	}
	return v, created, nil
}

func prepare(tx *bolt.Tx, req UpdateRequest) (*berryv1.ConfigVersion, bool, error) {
	cur := current(tx)
	if req.IfEmpty && cur != 0 {
		v, err := get(tx, cur)
		return v, false, err
	}
	if req.ExpectedVersion != 0 && req.ExpectedVersion != cur {
		return nil, false, fmt.Errorf("%w (based on %d, current is %d)", ErrStale, req.ExpectedVersion, cur)
	}
	cfg := &berryv1.Config{}
	if cur != 0 {
		old, err := get(tx, cur)
		if err != nil {
			return nil, false, err
		}
		if old.GetConfig() != nil {
			cfg = old.GetConfig()
		}
	}
	if err := req.Mutate(cfg); err != nil {
		return nil, false, err
	}
	return &berryv1.ConfigVersion{
		Version: cur + 1, CreatedAt: timestamppb.Now(),
		Author: req.Author, Message: req.Message, Config: cfg,
	}, true, nil
}

func put(tx *bolt.Tx, v *berryv1.ConfigVersion) error {
	buf, err := proto.MarshalOptions{Deterministic: true}.Marshal(v)
	if err != nil {
		return fmt.Errorf("marshal version: %w", err)
	}
	if err := tx.Bucket(bucketVersions).Put(versionKey(v.Version), buf); err != nil {
		return err
	}
	return tx.Bucket(bucketMeta).Put(keyCurrent, versionKey(v.Version))
}

// List returns up to limit versions lower than before (0: from the newest), newest
// first, without their configs: only the metadata is decoded, so listing costs the
// same whatever the size of the configs.
func (s *Store) List(ctx context.Context, before uint64, limit int) ([]*berryv1.ConfigVersion, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	var out []*berryv1.ConfigVersion
	err := s.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketVersions).Cursor()
		var k, raw []byte
		if before == 0 {
			k, raw = c.Last()
		} else {
			k, raw = c.Seek(versionKey(before))
			if k == nil {
				k, raw = c.Last()
			} else {
				k, raw = c.Prev()
			}
		}
		for ; k != nil && len(out) < limit; k, raw = c.Prev() {
			v, err := metadata(raw)
			if err != nil {
				return fmt.Errorf("version %d: corrupt record: %w", binary.BigEndian.Uint64(k), err)
			}
			out = append(out, v)
		}
		return nil
	})
	return out, err
}

// configField is the number of ConfigVersion's config field, the one metadata skips.
var configField = (&berryv1.ConfigVersion{}).ProtoReflect().Descriptor().Fields().ByName("config").Number()

// metadata decodes a stored ConfigVersion without its config: the config field is
// skipped on the wire and every other field decoded as usual, so records written
// before this existed need no migration.
func metadata(raw []byte) (*berryv1.ConfigVersion, error) {
	var meta []byte
	for b := raw; len(b) > 0; {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return nil, protowire.ParseError(n)
		}
		m := protowire.ConsumeFieldValue(num, typ, b[n:])
		if m < 0 {
			return nil, protowire.ParseError(m)
		}
		if num != configField {
			meta = append(meta, b[:n+m]...)
		}
		b = b[n+m:]
	}
	v := &berryv1.ConfigVersion{}
	if err := proto.Unmarshal(meta, v); err != nil {
		return nil, err
	}
	return v, nil
}

// Backup writes a consistent copy of the data file to w from one read transaction,
// so writers are not blocked and the copy is exactly one committed state.
func (s *Store) Backup(ctx context.Context, w io.Writer) (int64, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	var n int64
	err := s.db.View(func(tx *bolt.Tx) error {
		var err error
		n, err = tx.WriteTo(w)
		return err
	})
	return n, err
}

// BackupFile writes a backup to path atomically (see package atomicfile).
func (s *Store) BackupFile(ctx context.Context, path string) (int64, error) {
	var n int64
	err := atomicfile.Write(path, 0o600, func(w io.Writer) error {
		var err error
		n, err = s.Backup(ctx, w)
		return err
	})
	return n, err
}

// Restore replaces the data file at dst with the backup at src, after checking that
// src is a Berry data file, and gives it a new lineage so that edges accept its
// versions even when they hold higher ones from before the restore. dst must not be
// open (the control plane must be stopped).
func Restore(src, dst string) error {
	tmp := dst + ".restore"
	in, err := os.Open(src)
	if err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	defer in.Close()
	if err := atomicfile.Write(tmp, 0o600, func(w io.Writer) error { _, err := io.Copy(w, in); return err }); err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	db, err := bolt.Open(tmp, 0o600, &bolt.Options{Timeout: 2 * time.Second})
	if err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("restore: %s is not a data file: %w", src, err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		meta := tx.Bucket(bucketMeta)
		if meta == nil || tx.Bucket(bucketVersions) == nil {
			return fmt.Errorf("%s is not a Berry data file", src)
		}
		if err := meta.Delete(keyApplied); err != nil { // a restored file starts a new log
			return err
		}
		return meta.Put(keyLineage, []byte(newLineage()))
	})
	if cerr := db.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("restore: %w", err)
	}
	// Refuse to restore over a file a running control plane holds, and hold its lock
	// until the new file is in place, so that none starts on it in between. A dst
	// bbolt cannot open (not a data file) cannot be served either: no lock needed.
	cur, err := bolt.Open(dst, 0o600, &bolt.Options{Timeout: time.Second})
	switch {
	case errors.Is(err, bolt.ErrTimeout):
		_ = os.Remove(tmp)
		return fmt.Errorf("restore %s: %w", dst, ErrLocked)
	case err == nil:
		defer cur.Close()
	}
	if testHookBeforeRename != nil {
		testHookBeforeRename()
	}
	if err := os.Rename(tmp, dst); err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("restore: %w", err)
	}
	return atomicfile.SyncDir(filepath.Dir(dst))
}
