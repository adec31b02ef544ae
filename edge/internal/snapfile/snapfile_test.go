package snapfile

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	berryv1 "github.com/berry-gateway/berry/pkg/api/berry/v1"
	"google.golang.org/protobuf/proto"
)

func TestSaveLoad(t *testing.T) {
	dir := t.TempDir()
	f := File{Path: filepath.Join(dir, "sub", "edge.pb")}
	if s, err := f.Load(); s != nil || err != nil {
		t.Fatalf("Load before Save = %v, %v; want nil, nil", s, err)
	}
	for v := uint64(1); v <= 3; v++ {
		want := &berryv1.Snapshot{Version: v, Lineage: "l1", Config: &berryv1.Config{Models: []*berryv1.Model{{Id: "m"}}}}
		if err := f.Save(want); err != nil {
			t.Fatal(err)
		}
		got, err := f.Load()
		if err != nil || !proto.Equal(got, want) {
			t.Fatalf("Load = %v, %v; want %v", got, err, want)
		}
	}
	// No temp files left behind.
	entries, _ := os.ReadDir(filepath.Dir(f.Path))
	if len(entries) != 1 {
		t.Fatalf("cache dir holds %d files, want 1", len(entries))
	}
	if err := os.WriteFile(f.Path, []byte("\xff\xff\xff garbage"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := f.Load(); err == nil || !strings.Contains(err.Error(), "corrupt") {
		t.Fatalf("Load of garbage: %v", err)
	}
	if err := (File{}).Save(&berryv1.Snapshot{}); err != nil {
		t.Fatal(err)
	}
}

func TestDefaultPath(t *testing.T) {
	tests := []struct{ dir, id, want string }{
		{"/c", "host:3000", "/c/host_3000.pb"},
		{"/c", "../../etc/passwd", "/c/.._.._etc_passwd.pb"},
		{"/c", "..", "/c/edge.pb"},
		{"/c", "", "/c/edge.pb"},
	}
	for _, tt := range tests {
		got, err := DefaultPath(tt.dir, tt.id)
		if err != nil || got != tt.want {
			t.Errorf("DefaultPath(%q, %q) = %q, %v; want %q", tt.dir, tt.id, got, err, tt.want)
		}
	}
}
