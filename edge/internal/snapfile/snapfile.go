// Package snapfile keeps an edge's last accepted snapshot on local disk, so that an
// edge restarted while the control plane is away still has a config to serve.
package snapfile

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	berryv1 "github.com/berry-gateway/berry/pkg/api/berry/v1"
	"github.com/berry-gateway/berry/pkg/atomicfile"
	"google.golang.org/protobuf/proto"
)

// File is one edge's snapshot file. The zero value (no path) saves and loads nothing.
type File struct {
	Path string
}

// DefaultPath is where an edge keeps its snapshot file when --cache-dir is not given:
// <user cache dir>/berry/edges/<edge id>.pb.
func DefaultPath(dir, edgeID string) (string, error) {
	if dir == "" {
		base, err := os.UserCacheDir()
		if err != nil {
			return "", fmt.Errorf("no cache directory (set --cache-dir): %w", err)
		}
		dir = filepath.Join(base, "berry", "edges")
	}
	return filepath.Join(dir, fileName(edgeID)+".pb"), nil
}

// fileName keeps an edge id (often host:port) a single safe path element.
func fileName(id string) string {
	b := []byte(id)
	for i, c := range b {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '-', c == '_', c == '.':
		default:
			b[i] = '_'
		}
	}
	if len(b) == 0 || string(b) == "." || string(b) == ".." {
		return "edge"
	}
	return string(b)
}

// Save writes s so that a crash at any point leaves either the old file or the new
// one, never a torn one (package atomicfile).
func (f File) Save(s *berryv1.Snapshot) error {
	if f.Path == "" {
		return nil
	}
	buf, err := proto.MarshalOptions{Deterministic: true}.Marshal(s)
	if err != nil {
		return fmt.Errorf("snapshot file: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(f.Path), 0o700); err != nil {
		return fmt.Errorf("snapshot file: %w", err)
	}
	if err := atomicfile.WriteFile(f.Path, buf, 0o600); err != nil {
		return fmt.Errorf("snapshot file: %w", err)
	}
	return nil
}

// Touch records that the saved snapshot was current at t (as the file's time).
func (f File) Touch(t time.Time) error {
	if f.Path == "" {
		return nil
	}
	return os.Chtimes(f.Path, t, t)
}

// Saved returns when the saved snapshot was last known current: its file's time.
func (f File) Saved() (time.Time, error) {
	fi, err := os.Stat(f.Path)
	if err != nil {
		return time.Time{}, err
	}
	return fi.ModTime(), nil
}

// Load reads the saved snapshot; it returns (nil, nil) when there is none.
func (f File) Load() (*berryv1.Snapshot, error) {
	if f.Path == "" {
		return nil, nil
	}
	buf, err := os.ReadFile(f.Path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("snapshot file: %w", err)
	}
	s := &berryv1.Snapshot{}
	if err := proto.Unmarshal(buf, s); err != nil {
		return nil, fmt.Errorf("snapshot file %s: corrupt: %w", f.Path, err)
	}
	return s, nil
}
