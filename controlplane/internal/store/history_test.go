package store

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	berryv1 "github.com/berry-gateway/berry/pkg/api/berry/v1"
	bolt "go.etcd.io/bbolt"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"
)

func openTemp(t testing.TB) (*Store, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "berry.db")
	s, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s, path
}

func TestUpdate(t *testing.T) {
	ctx := context.Background()
	s, _ := openTemp(t)
	addModel := func(id string) func(*berryv1.Config) error {
		return func(c *berryv1.Config) error {
			c.Models = append(c.Models, &berryv1.Model{Id: id})
			return nil
		}
	}
	errRefused := errors.New("refused")
	steps := []struct {
		name       string
		req        UpdateRequest
		wantVer    uint64
		wantModels int
		wantErr    error
	}{
		{"on empty store", UpdateRequest{Mutate: addModel("a"), Author: "admin"}, 1, 1, nil},
		{"expected matches", UpdateRequest{Mutate: addModel("b"), ExpectedVersion: 1}, 2, 2, nil},
		{"stale", UpdateRequest{Mutate: addModel("c"), ExpectedVersion: 1}, 0, 0, ErrStale},
		{"mutate error aborts", UpdateRequest{Mutate: func(*berryv1.Config) error { return errRefused }}, 0, 0, errRefused},
		{"unconditional", UpdateRequest{Mutate: addModel("d")}, 3, 3, nil},
	}
	for _, st := range steps {
		v, _, err := s.Update(ctx, st.req)
		if st.wantErr != nil {
			if !errors.Is(err, st.wantErr) {
				t.Fatalf("%s: err = %v, want %v", st.name, err, st.wantErr)
			}
			continue
		}
		if err != nil {
			t.Fatalf("%s: %v", st.name, err)
		}
		if v.Version != st.wantVer || len(v.Config.Models) != st.wantModels {
			t.Fatalf("%s: version %d with %d models, want %d with %d", st.name, v.Version, len(v.Config.Models), st.wantVer, st.wantModels)
		}
	}
	// A failed update leaves no trace: the current version is still 3.
	cur, err := s.Current(ctx)
	if err != nil || cur.Version != 3 {
		t.Fatalf("current = %v, %v", cur, err)
	}
}

func TestList(t *testing.T) {
	ctx := context.Background()
	s, _ := openTemp(t)
	for i := 0; i < 5; i++ {
		if _, _, err := s.Update(ctx, UpdateRequest{Mutate: replace(cfg("m"))}); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		before uint64
		limit  int
		want   []uint64
	}{
		{0, 100, []uint64{5, 4, 3, 2, 1}},
		{0, 2, []uint64{5, 4}},
		{4, 2, []uint64{3, 2}},
		{2, 10, []uint64{1}},
		{1, 10, nil},
		{99, 1, []uint64{5}},
	}
	for _, tt := range tests {
		vs, err := s.List(ctx, tt.before, tt.limit)
		if err != nil {
			t.Fatal(err)
		}
		var got []uint64
		for _, v := range vs {
			got = append(got, v.Version)
		}
		if len(got) != len(tt.want) {
			t.Fatalf("List(%d, %d) = %v, want %v", tt.before, tt.limit, got, tt.want)
		}
		for i := range got {
			if got[i] != tt.want[i] {
				t.Fatalf("List(%d, %d) = %v, want %v", tt.before, tt.limit, got, tt.want)
			}
		}
	}
}

func TestBackupRestore(t *testing.T) {
	ctx := context.Background()
	s, path := openTemp(t)
	for _, m := range []string{"a", "b"} {
		if _, _, err := s.Update(ctx, UpdateRequest{Mutate: replace(cfg(m))}); err != nil {
			t.Fatal(err)
		}
	}
	backup := filepath.Join(t.TempDir(), "backup.db")
	if _, err := s.BackupFile(ctx, backup); err != nil {
		t.Fatal(err)
	}
	// Written after the backup: must not be in it.
	if _, _, err := s.Update(ctx, UpdateRequest{Mutate: replace(cfg("c"))}); err != nil {
		t.Fatal(err)
	}
	oldLineage := s.Lineage()

	// The running store holds the lock: restoring over it is refused.
	if err := Restore(backup, path); !errors.Is(err, ErrLocked) {
		t.Fatalf("restore over an open store: err = %v, want ErrLocked", err)
	}
	s.Close()
	if err := Restore(backup, path); err != nil {
		t.Fatal(err)
	}
	r, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	cur, err := r.Current(ctx)
	if err != nil || cur.GetVersion() != 2 || cur.GetConfig().GetModels()[0].GetId() != "b" {
		t.Fatalf("restored current = %v, %v; want version 2 with model b", cur, err)
	}
	if r.Lineage() == "" || r.Lineage() == oldLineage {
		t.Fatalf("restored lineage %q, want a new one (old %q)", r.Lineage(), oldLineage)
	}

	// Not a data file.
	junk := filepath.Join(t.TempDir(), "junk")
	if err := os.WriteFile(junk, bytes.Repeat([]byte("x"), 8192), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := Restore(junk, filepath.Join(t.TempDir(), "dst.db")); err == nil {
		t.Fatal("restoring junk succeeded")
	}
}

func TestLineageSurvivesReopen(t *testing.T) {
	s, path := openTemp(t)
	l := s.Lineage()
	s.Close()
	r, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if l == "" || r.Lineage() != l {
		t.Fatalf("lineage %q after reopen, want %q", r.Lineage(), l)
	}
}

// List decodes only the metadata: a record whose config no longer decodes is still
// listed, and no config is returned.
func TestListDecodesOnlyMetadata(t *testing.T) {
	ctx := context.Background()
	s, _ := openTemp(t)
	if _, _, err := s.Update(ctx, UpdateRequest{Mutate: replace(cfg("a")), Author: "admin", Message: "first"}); err != nil {
		t.Fatal(err)
	}
	// Version 2 with a config field that is not a Config: tag 5, length 3, and an
	// invalid field (number 0) inside.
	meta, err := proto.Marshal(&berryv1.ConfigVersion{Version: 2, CreatedAt: timestamppb.Now(), Author: "op", Message: "second"})
	if err != nil {
		t.Fatal(err)
	}
	raw := protowire.AppendBytes(protowire.AppendTag(meta, 5, protowire.BytesType), []byte{0x00, 0x00, 0x00})
	err = s.db.Update(func(tx *bolt.Tx) error {
		if err := tx.Bucket(bucketVersions).Put(versionKey(2), raw); err != nil {
			return err
		}
		return tx.Bucket(bucketMeta).Put(keyCurrent, versionKey(2))
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get(ctx, 2); err == nil {
		t.Fatal("Get decoded a corrupt config")
	}
	vs, err := s.List(ctx, 0, 10)
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	want := []struct {
		version         uint64
		author, message string
	}{{2, "op", "second"}, {1, "admin", "first"}}
	if len(vs) != len(want) {
		t.Fatalf("List returned %d versions, want %d", len(vs), len(want))
	}
	for i, w := range want {
		v := vs[i]
		if v.GetVersion() != w.version || v.GetAuthor() != w.author || v.GetMessage() != w.message || v.GetCreatedAt() == nil {
			t.Errorf("List[%d] = %v, want version %d by %s: %s", i, v, w.version, w.author, w.message)
		}
		if v.Config != nil {
			t.Errorf("List[%d] carries a config", i)
		}
	}
}

// writeData makes a data file at path whose current config has one model, id.
func writeData(t *testing.T, path, id string) {
	t.Helper()
	s, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, _, err := s.Update(context.Background(), UpdateRequest{Mutate: replace(cfg(id))}); err != nil {
		t.Fatal(err)
	}
}

// A control plane that opened the data file and waited for its lock while restore
// renamed a new file over it must end up on the new file, not the unlinked one.
func TestOpenFollowsAFileRenamedOverIt(t *testing.T) {
	dir := t.TempDir()
	path, replacement := filepath.Join(dir, "berry.db"), filepath.Join(dir, "new.db")
	writeData(t, path, "old")
	writeData(t, replacement, "new")
	holder, err := bolt.Open(path, 0o600, nil) // the lock restore holds while it renames
	if err != nil {
		t.Fatal(err)
	}
	opened := make(chan struct{})
	var once sync.Once
	testHookOpenFile = func() { once.Do(func() { close(opened) }) }
	t.Cleanup(func() { testHookOpenFile = nil })
	type result struct {
		s   *Store
		err error
	}
	res := make(chan result, 1)
	go func() {
		s, err := Open(path, Options{LockTimeout: time.Minute})
		res <- result{s, err}
	}()
	<-opened // Open holds the old file and waits for its lock
	if err := os.Rename(replacement, path); err != nil {
		t.Fatal(err)
	}
	if err := holder.Close(); err != nil {
		t.Fatal(err)
	}
	r := <-res
	if r.err != nil {
		t.Fatal(r.err)
	}
	defer r.s.Close()
	cur, err := r.s.Current(context.Background())
	if err != nil || cur.GetConfig().GetModels()[0].GetId() != "new" {
		t.Fatalf("opened store's current = %v, %v; want the renamed file's model new", cur, err)
	}
}

// Restore holds the lock of the file it replaces until the new one is in place: a
// control plane starting meanwhile cannot open the file about to be unlinked.
func TestRestoreHoldsTheLockWhileRenaming(t *testing.T) {
	dir := t.TempDir()
	path, backup := filepath.Join(dir, "berry.db"), filepath.Join(dir, "backup.db")
	writeData(t, path, "old")
	writeData(t, backup, "restored")
	renamed := false
	testHookBeforeRename = func() {
		renamed = true
		s, err := Open(path, Options{LockTimeout: 100 * time.Millisecond})
		if err == nil {
			s.Close()
		}
		if !errors.Is(err, ErrLocked) {
			t.Errorf("Open while restore renames: err = %v, want ErrLocked", err)
		}
	}
	t.Cleanup(func() { testHookBeforeRename = nil })
	if err := Restore(backup, path); err != nil {
		t.Fatal(err)
	}
	if !renamed {
		t.Fatal("restore did not reach its rename")
	}
	s, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if cur, err := s.Current(context.Background()); err != nil || cur.GetConfig().GetModels()[0].GetId() != "restored" {
		t.Fatalf("after restore current = %v, %v", cur, err)
	}
}
