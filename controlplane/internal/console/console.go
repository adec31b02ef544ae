// Package console serves the control plane's web console: the files of web/,
// embedded in the binary, at /console/ on the HTTP address. The pages call the admin
// API (httpapi.MountAPI) from the same origin with the token the operator pastes, so
// nothing here authenticates: the files hold no data, and every answer that does
// comes from the API, which checks the token.
package console

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/base64"
	"fmt"
	"io/fs"
	"net/http"
	"path"
	"strings"
	"time"
)

//go:embed web
var embedded embed.FS

// Prefix is where the console is served.
const Prefix = "/console/"

// Headers every console answer carries. The policy allows only this origin's own
// files and API: no inline script or style (an injected string cannot run), no
// framing (clickjacking), no referrer leaving the page, no MIME sniffing.
var securityHeaders = map[string]string{
	"Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
		"font-src 'self'; connect-src 'self'; manifest-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
	"X-Frame-Options":              "DENY",
	"X-Content-Type-Options":       "nosniff",
	"Referrer-Policy":              "no-referrer",
	"Cross-Origin-Opener-Policy":   "same-origin",
	"Cross-Origin-Resource-Policy": "same-origin",
	"Permissions-Policy":           "camera=(), microphone=(), geolocation=(), payment=(), usb=()",
	// Always revalidated (cheap: the ETag is the content's hash), so a new binary's
	// pages are taken at once and never mixed with an old binary's scripts.
	"Cache-Control": "no-cache",
}

// Mux is where Register mounts the console (httpapi.Server, http.ServeMux).
type Mux interface {
	Handle(pattern string, h http.Handler)
}

// Register mounts the console at Prefix on m, and redirects / and /console to it.
func Register(m Mux) error {
	h, err := New()
	if err != nil {
		return err
	}
	m.Handle("GET "+Prefix, h)
	toConsole := http.RedirectHandler(Prefix, http.StatusFound)
	m.Handle("GET /{$}", toConsole)
	m.Handle("GET /console", toConsole)
	return nil
}

// file is one embedded file and its entity tag.
type file struct {
	data []byte
	etag string
}

// Handler serves the embedded files below Prefix.
type Handler struct {
	files map[string]file // by path below web/, e.g. "index.html", "js/app.js"
}

// New returns the handler of the embedded files, each file's ETag computed once.
func New() (*Handler, error) {
	root, err := fs.Sub(embedded, "web")
	if err != nil {
		return nil, err
	}
	h := &Handler{files: map[string]file{}}
	err = fs.WalkDir(root, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := fs.ReadFile(root, p)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(data)
		h.files[p] = file{data: data, etag: `"` + base64.RawURLEncoding.EncodeToString(sum[:18]) + `"`}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("console files: %w", err)
	}
	if _, ok := h.files["index.html"]; !ok {
		return nil, fmt.Errorf("console files: no index.html")
	}
	return h, nil
}

// ServeHTTP serves the file the path names below Prefix; the directory itself, and
// any path without an extension (a page's own route, e.g. /console/keys), get
// index.html, so a reload or a shared link opens the right page.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	for k, v := range securityHeaders {
		w.Header().Set(k, v)
	}
	name, ok := strings.CutPrefix(r.URL.Path, Prefix)
	if !ok {
		http.NotFound(w, r)
		return
	}
	name = strings.TrimPrefix(path.Clean("/"+name), "/")
	if name == "" || path.Ext(name) == "" {
		name = "index.html"
	}
	f, ok := h.files[name]
	if !ok {
		http.Error(w, "no such file in the console: "+r.URL.Path, http.StatusNotFound)
		return
	}
	w.Header().Set("ETag", f.etag)
	// The files are in the binary: no modification time; the ETag answers
	// If-None-Match, and ServeContent sets Content-Type from the extension.
	http.ServeContent(w, r, name, time.Time{}, bytes.NewReader(f.data))
}
