package store

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	berryv1 "github.com/berry-gateway/berry/pkg/api/berry/v1"
	"google.golang.org/protobuf/proto"
)

func cfg(name string) *berryv1.Config {
	return &berryv1.Config{Models: []*berryv1.Model{{Id: name, Name: name}}}
}

// replace is a Mutate that makes the whole config c.
func replace(c *berryv1.Config) func(*berryv1.Config) error {
	return func(cur *berryv1.Config) error {
		proto.Reset(cur)
		proto.Merge(cur, c)
		return nil
	}
}

func TestVersionsAndReopen(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "berry.db")
	s, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if v, err := s.Current(ctx); err != nil || v != nil {
		t.Fatalf("empty store Current = %v, %v", v, err)
	}
	steps := []struct {
		name     string
		req      UpdateRequest
		wantVer  uint64
		wantErr  error
		wantMade bool
	}{
		{"first", UpdateRequest{Mutate: replace(cfg("a")), Author: "op", Message: "m1"}, 1, nil, true},
		{"bootstrap skipped when not empty", UpdateRequest{Mutate: replace(cfg("x")), IfEmpty: true}, 1, nil, false},
		{"expected matches", UpdateRequest{Mutate: replace(cfg("b")), ExpectedVersion: 1}, 2, nil, true},
		{"stale", UpdateRequest{Mutate: replace(cfg("c")), ExpectedVersion: 1}, 0, ErrStale, false},
		{"unconditional", UpdateRequest{Mutate: replace(cfg("d"))}, 3, nil, true},
	}
	for _, st := range steps {
		v, made, err := s.Update(ctx, st.req)
		if !errors.Is(err, st.wantErr) {
			t.Fatalf("%s: err = %v, want %v", st.name, err, st.wantErr)
		}
		if err != nil {
			continue
		}
		if v.Version != st.wantVer || made != st.wantMade {
			t.Fatalf("%s: version %d created %v, want %d %v", st.name, v.Version, made, st.wantVer, st.wantMade)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s, err = Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	cur, err := s.Current(ctx)
	if err != nil || cur.Version != 3 || !proto.Equal(cur.Config, cfg("d")) {
		t.Fatalf("after reopen Current = %v, %v", cur, err)
	}
	v1, err := s.Get(ctx, 1)
	if err != nil || v1.Author != "op" || v1.Message != "m1" || !proto.Equal(v1.Config, cfg("a")) {
		t.Fatalf("Get(1) = %v, %v", v1, err)
	}
	if _, err := s.Get(ctx, 9); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Get(9) err = %v, want ErrNotFound", err)
	}
}

func TestSecondOpenFailsFast(t *testing.T) {
	path := filepath.Join(t.TempDir(), "berry.db")
	s, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := Open(path, Options{LockTimeout: 50 * time.Millisecond}); !errors.Is(err, ErrLocked) {
		t.Fatalf("second Open err = %v, want ErrLocked", err)
	}
}
