package console

import (
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// serve serves the console as the control plane mounts it, on a loopback socket.
func serve(t *testing.T) string {
	t.Helper()
	mux := http.NewServeMux()
	if err := Register(mux); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv.URL
}

// noRedirect is a client that shows redirects instead of following them.
var noRedirect = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

func do(t *testing.T, method, url string, header http.Header) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := noRedirect.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, string(b)
}

func wantSecurityHeaders(t *testing.T, what string, h http.Header) {
	t.Helper()
	csp := h.Get("Content-Security-Policy")
	for _, d := range []string{"default-src 'none'", "script-src 'self'", "style-src 'self'", "connect-src 'self'", "frame-ancestors 'none'", "base-uri 'none'"} {
		if !strings.Contains(csp, d) {
			t.Errorf("%s: CSP %q lacks %q", what, csp, d)
		}
	}
	if strings.Contains(csp, "unsafe-inline") || strings.Contains(csp, "unsafe-eval") || strings.Contains(csp, "http:") || strings.Contains(csp, "https:") {
		t.Errorf("%s: CSP %q allows inline code, eval or other origins", what, csp)
	}
	for k, v := range map[string]string{
		"X-Frame-Options":        "DENY",
		"X-Content-Type-Options": "nosniff",
		"Referrer-Policy":        "no-referrer",
		"Cache-Control":          "no-cache",
	} {
		if got := h.Get(k); got != v {
			t.Errorf("%s: %s %q, want %q", what, k, got, v)
		}
	}
	if h.Get("Set-Cookie") != "" {
		t.Errorf("%s: sets a cookie", what)
	}
}

func TestServesEmbeddedFilesWithSecurityHeaders(t *testing.T) {
	base := serve(t)
	index, err := fs.ReadFile(embedded, "web/index.html")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, path  string
		status      int
		contentType string
		body        string
	}{
		{"the console", "/console/", http.StatusOK, "text/html", string(index)},
		{"index.html", "/console/index.html", http.StatusOK, "text/html", string(index)},
		{"a page's own route", "/console/keys", http.StatusOK, "text/html", string(index)},
		{"a missing file", "/console/nope.js", http.StatusNotFound, "text/plain", "no such file in the console: /console/nope.js"},
		{"out of the directory", "/console/../../console.go", http.StatusTemporaryRedirect, "", ""}, // the mux cleans it to /console.go
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, body := do(t, http.MethodGet, base+tc.path, nil)
			if resp.StatusCode != tc.status || !strings.HasPrefix(resp.Header.Get("Content-Type"), tc.contentType) ||
				(tc.body != "" && !strings.Contains(body, tc.body)) {
				t.Fatalf("%d %q: %.200s", resp.StatusCode, resp.Header.Get("Content-Type"), body)
			}
			if strings.Contains(body, "package console") {
				t.Fatal("served a source file")
			}
			if resp.StatusCode != http.StatusTemporaryRedirect {
				wantSecurityHeaders(t, tc.path, resp.Header)
			}
		})
	}
	// Every embedded file is served, with the type its extension says.
	h, err := New()
	if err != nil {
		t.Fatal(err)
	}
	types := map[string]string{".html": "text/html", ".js": "text/javascript", ".css": "text/css", ".svg": "image/svg+xml", ".png": "image/png"}
	for name, f := range h.files {
		if name == "index.html" {
			continue
		}
		resp, body := do(t, http.MethodGet, base+Prefix+name, nil)
		if resp.StatusCode != http.StatusOK || body != string(f.data) {
			t.Errorf("%s: %d", name, resp.StatusCode)
		}
		for ext, ct := range types {
			if strings.HasSuffix(name, ext) && !strings.HasPrefix(resp.Header.Get("Content-Type"), ct) {
				t.Errorf("%s: Content-Type %q, want %s", name, resp.Header.Get("Content-Type"), ct)
			}
		}
		wantSecurityHeaders(t, name, resp.Header)
	}
}

func TestRevalidatesByETag(t *testing.T) {
	base := serve(t)
	resp, _ := do(t, http.MethodGet, base+"/console/", nil)
	etag := resp.Header.Get("ETag")
	if !strings.HasPrefix(etag, `"`) || len(etag) < 10 {
		t.Fatalf("ETag %q", etag)
	}
	resp, body := do(t, http.MethodGet, base+"/console/", http.Header{"If-None-Match": {etag}})
	if resp.StatusCode != http.StatusNotModified || body != "" {
		t.Fatalf("revalidation: %d %q", resp.StatusCode, body)
	}
	resp, _ = do(t, http.MethodGet, base+"/console/", http.Header{"If-None-Match": {`"old"`}})
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("a stale ETag: %d", resp.StatusCode)
	}
	if resp, body := do(t, http.MethodHead, base+"/console/", nil); resp.StatusCode != http.StatusOK || body != "" || resp.Header.Get("ETag") != etag {
		t.Fatalf("HEAD: %d %q %v", resp.StatusCode, body, resp.Header)
	}
}

func TestRedirectsAndMethods(t *testing.T) {
	base := serve(t)
	for _, path := range []string{"/", "/console"} {
		resp, _ := do(t, http.MethodGet, base+path, nil)
		if resp.StatusCode != http.StatusFound || resp.Header.Get("Location") != "/console/" {
			t.Errorf("GET %s: %d to %q", path, resp.StatusCode, resp.Header.Get("Location"))
		}
	}
	if resp, _ := do(t, http.MethodGet, base+"/elsewhere", nil); resp.StatusCode != http.StatusNotFound {
		t.Errorf("GET /elsewhere: %d", resp.StatusCode)
	}
	for _, m := range []string{http.MethodPost, http.MethodPut, http.MethodDelete} {
		if resp, _ := do(t, m, base+"/console/", nil); resp.StatusCode != http.StatusMethodNotAllowed {
			t.Errorf("%s /console/: %d", m, resp.StatusCode)
		}
	}
}
