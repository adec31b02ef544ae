package buildinfo

import (
	"runtime"
	"strings"
	"testing"
)

func TestString(t *testing.T) {
	tests := []struct {
		info Info
		want string
	}{
		{Info{Version: "v1.2.3", GoVersion: "go1.26.8"}, "v1.2.3 go1.26.8"},
		{Info{Version: "dev", Revision: "0123456789abcdef", GoVersion: "go1.26.8"}, "dev (0123456789ab) go1.26.8"},
		{Info{Version: "dev", Revision: "abc", Modified: true, GoVersion: "go1.26.8"}, "dev (abc+modified) go1.26.8"},
	}
	for _, tc := range tests {
		if got := tc.info.String(); got != tc.want {
			t.Errorf("%+v: %q, want %q", tc.info, got, tc.want)
		}
	}
	if g := Get(); g.Version == "" || g.GoVersion != runtime.Version() || !strings.HasPrefix(g.GoVersion, "go") {
		t.Fatalf("Get() = %+v", g)
	}
}
