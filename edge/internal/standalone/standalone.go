// Package standalone runs an edge with no control plane: its config is a seed-format
// TOML file that is watched and hot-reloaded. An edit that does not parse or validate
// is logged and ignored, and the last good config keeps serving.
package standalone

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"log/slog"
	"os"
	"time"

	berryv1 "github.com/berry-gateway/berry/pkg/api/berry/v1"
	"github.com/berry-gateway/berry/pkg/config"
)

// Runtime installs a snapshot (serving.Runtime).
type Runtime interface {
	Apply(*berryv1.Snapshot) error
	Applied() (version uint64, lineage string)
}

// Lineage marks snapshots built from a local file; their versions count reloads.
const Lineage = "standalone"

// Watcher reloads Path into Runtime. Fields must be set before Load.
type Watcher struct {
	Path    string
	Runtime Runtime
	Log     *slog.Logger
	// Interval between checks of the file; default 1s. Polling (not inotify) also
	// sees a file replaced by rename, as editors and Kubernetes ConfigMaps do.
	Interval time.Duration

	last [sha256.Size]byte // content last tried, good or bad
}

// Load reads and applies the file once; an invalid file is an error here, so an edge
// never starts on a config it cannot serve.
func (w *Watcher) Load() error {
	doc, err := os.ReadFile(w.Path)
	if err != nil {
		return fmt.Errorf("config file: %w", err)
	}
	w.last = sha256.Sum256(doc)
	return w.apply(doc)
}

func (w *Watcher) apply(doc []byte) error {
	cfg, warnings, err := config.ParseTOML(doc)
	if err != nil {
		return fmt.Errorf("config file %s: %w", w.Path, err)
	}
	for _, msg := range warnings {
		w.log().Warn("config file", "path", w.Path, "warning", msg)
	}
	v, _ := w.Runtime.Applied()
	v++
	if err := w.Runtime.Apply(&berryv1.Snapshot{Version: v, Config: cfg, Lineage: Lineage}); err != nil {
		return fmt.Errorf("config file %s: %w", w.Path, err)
	}
	w.log().Info("config loaded", "path", w.Path, "version", v)
	return nil
}

// Run checks the file every Interval until ctx is done, applying each new content.
func (w *Watcher) Run(ctx context.Context) error {
	interval := w.Interval
	if interval <= 0 {
		interval = time.Second
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
		w.check()
	}
}

func (w *Watcher) check() {
	doc, err := os.ReadFile(w.Path)
	if err != nil {
		// Mid-replace the file may briefly be missing: keep serving, try again.
		w.log().Debug("config file unreadable; still serving the last good config", "path", w.Path, "err", err)
		return
	}
	sum := sha256.Sum256(doc)
	if bytes.Equal(sum[:], w.last[:]) {
		return
	}
	w.last = sum
	if err := w.apply(doc); err != nil {
		serving, _ := w.Runtime.Applied()
		w.log().Error("config file change ignored; still serving the last good config",
			"serving", serving, "err", err)
	}
}

func (w *Watcher) log() *slog.Logger {
	if w.Log != nil {
		return w.Log
	}
	return slog.Default()
}
