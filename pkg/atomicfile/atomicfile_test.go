package atomicfile

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"
)

func TestWrite(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "f")
	boom := errors.New("boom")
	steps := []struct {
		name    string
		write   func(io.Writer) error
		wantErr error
		want    string
	}{
		{"create", func(w io.Writer) error { _, err := io.WriteString(w, "one"); return err }, nil, "one"},
		{"replace", func(w io.Writer) error { _, err := io.WriteString(w, "two"); return err }, nil, "two"},
		{"a failed write keeps the old content", func(w io.Writer) error {
			_, _ = io.WriteString(w, "torn")
			return boom
		}, boom, "two"},
	}
	for _, s := range steps {
		err := Write(path, 0o640, s.write)
		if !errors.Is(err, s.wantErr) {
			t.Fatalf("%s: err %v, want %v", s.name, err, s.wantErr)
		}
		got, err := os.ReadFile(path)
		if err != nil || string(got) != s.want {
			t.Fatalf("%s: file %q (%v), want %q", s.name, got, err, s.want)
		}
		fi, err := os.Stat(path)
		if err != nil || fi.Mode().Perm() != 0o640 {
			t.Fatalf("%s: mode %v (%v), want 0640", s.name, fi.Mode(), err)
		}
		entries, _ := os.ReadDir(dir)
		if len(entries) != 1 {
			t.Fatalf("%s: %d entries in the directory, want only the file (no temp left)", s.name, len(entries))
		}
	}
	if err := WriteFile(filepath.Join(dir, "missing", "f"), nil, 0o600); err == nil {
		t.Fatal("writing into a missing directory succeeded")
	}
}
