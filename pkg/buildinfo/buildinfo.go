// Package buildinfo says which build a binary is: its version, the source revision it
// was built from and the Go version. The project's build scripts stamp both with
// -ldflags "-X github.com/berry-gateway/berry/pkg/buildinfo.version=… -X ….revision=…".
// Without that, the version is the module version Go recorded (a tagged go install),
// else "dev", and the revision is the VCS revision Go records when it builds from a
// checkout (unless -buildvcs=false), else "".
package buildinfo

import (
	"runtime"
	"runtime/debug"
	"sync"
)

// version and revision are set at link time by the build scripts.
var version, revision string

// Info is a binary's build.
type Info struct {
	Version   string
	Revision  string // "" when not built from a checkout
	Modified  bool   // the checkout had uncommitted changes
	GoVersion string
}

var read = sync.OnceValue(func() Info {
	info := Info{Version: version, Revision: revision, GoVersion: runtime.Version()}
	bi, ok := debug.ReadBuildInfo()
	if ok {
		if info.Version == "" && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
			info.Version = bi.Main.Version
		}
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				if info.Revision == "" {
					info.Revision = s.Value
				}
			case "vcs.modified":
				info.Modified = revision == "" && s.Value == "true"
			}
		}
	}
	if info.Version == "" {
		info.Version = "dev"
	}
	return info
})

// Get returns this binary's build.
func Get() Info { return read() }

// String is one line naming the binary and its build, as --version prints it.
func (i Info) String() string {
	s := i.Version
	if i.Revision != "" {
		r := i.Revision
		if len(r) > 12 {
			r = r[:12]
		}
		if i.Modified {
			r += "+modified"
		}
		s += " (" + r + ")"
	}
	return s + " " + i.GoVersion
}
