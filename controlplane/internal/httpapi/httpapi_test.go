package httpapi

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

func registry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	c := prometheus.NewCounter(prometheus.CounterOpts{Name: "test_things_total", Help: "Things."})
	c.Add(3)
	reg.MustRegister(c)
	return reg
}

// serve runs New(opts) on a loopback listener and returns its base URL.
func serve(t *testing.T, opts Options) string {
	t.Helper()
	s := New(opts)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Serve(l) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := s.Shutdown(ctx); err != nil {
			t.Error(err)
		}
		if err := <-done; err != nil {
			t.Errorf("Serve after Shutdown: %v", err)
		}
	})
	return "http://" + l.Addr().String()
}

func get(t *testing.T, method, url, auth string) (int, string, http.Header) {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), resp.Header
}

func TestMetricsOverLoopback(t *testing.T) {
	url := serve(t, Options{Metrics: registry()}) + "/metrics"
	code, body, h := get(t, http.MethodGet, url, "")
	if code != http.StatusOK || !strings.Contains(body, "test_things_total 3") || !strings.HasPrefix(h.Get("Content-Type"), "text/plain") {
		t.Fatalf("GET /metrics: %d %q %v", code, body, h)
	}
	if code, _, _ := get(t, http.MethodHead, url, ""); code != http.StatusOK {
		t.Fatalf("HEAD /metrics: %d", code)
	}
	if code, _, h := get(t, http.MethodPost, url, ""); code != http.StatusMethodNotAllowed || !strings.Contains(h.Get("Allow"), "GET") {
		t.Fatalf("POST /metrics: %d, Allow %q", code, h.Get("Allow"))
	}
	if code, _, _ := get(t, http.MethodGet, strings.TrimSuffix(url, "/metrics")+"/nope", ""); code != http.StatusNotFound {
		t.Fatalf("GET /nope: %d", code)
	}
}

func TestMetricsToken(t *testing.T) {
	const token = "metrics-secret"
	url := serve(t, Options{Metrics: registry(), MetricsToken: token}) + "/metrics"
	tests := []struct {
		auth string
		want int
	}{
		{"Bearer " + token, http.StatusOK},
		{"bearer " + token + " ", http.StatusOK},
		{"", http.StatusUnauthorized}, // a token, once set, is needed from loopback too
		{"Bearer nope", http.StatusUnauthorized},
		{"Bearer " + token[:5], http.StatusUnauthorized},
		{"Basic " + token, http.StatusUnauthorized},
		{"Bearer", http.StatusUnauthorized},
	}
	for _, tt := range tests {
		code, body, h := get(t, http.MethodGet, url, tt.auth)
		if code != tt.want {
			t.Errorf("Authorization %q: %d, want %d", tt.auth, code, tt.want)
		}
		if code == http.StatusUnauthorized && (h.Get("WWW-Authenticate") == "" || strings.Contains(body, token)) {
			t.Errorf("Authorization %q: refusal %v %q", tt.auth, h, body)
		}
	}
}

// Without a token, only loopback clients get the metrics, unless the operator asked
// for an open control plane. A connection from another host cannot be made on a test
// machine, so these requests say where they come from.
func TestMetricsWithoutTokenFromElsewhere(t *testing.T) {
	for _, tt := range []struct {
		remote string
		open   bool
		want   int
	}{
		{"127.0.0.1:5000", false, http.StatusOK},
		{"[::1]:5000", false, http.StatusOK},
		{"192.0.2.7:5000", false, http.StatusUnauthorized},
		{"[2001:db8::1]:5000", false, http.StatusUnauthorized},
		{"not an address", false, http.StatusUnauthorized},
		{"192.0.2.7:5000", true, http.StatusOK},
	} {
		s := New(Options{Metrics: registry(), OpenMetrics: tt.open})
		req := httptest.NewRequest(http.MethodGet, "/metrics", nil)
		req.RemoteAddr = tt.remote
		w := httptest.NewRecorder()
		s.ServeHTTP(w, req)
		if w.Code != tt.want {
			t.Errorf("from %s (open %v): %d, want %d", tt.remote, tt.open, w.Code, tt.want)
		}
	}
}

// Handle mounts more beside the metrics, as the web console will.
func TestHandle(t *testing.T) {
	s := New(Options{Metrics: registry()})
	s.Handle("GET /console/", http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "console") }))
	req := httptest.NewRequest(http.MethodGet, "/console/x", nil)
	w := httptest.NewRecorder()
	s.ServeHTTP(w, req)
	if w.Body.String() != "console" {
		t.Fatalf("mounted handler: %d %q", w.Code, w.Body.String())
	}
}

// A collector that fails does not hide the others.
func TestFailingCollector(t *testing.T) {
	reg := registry()
	reg.MustRegister(failing{prometheus.NewDesc("test_failing", "Fails.", nil, nil)})
	url := serve(t, Options{Metrics: reg}) + "/metrics"
	code, body, _ := get(t, http.MethodGet, url, "")
	if code != http.StatusOK || !strings.Contains(body, "test_things_total 3") {
		t.Fatalf("GET /metrics with a failing collector: %d %q", code, body)
	}
}

type failing struct{ d *prometheus.Desc }

func (f failing) Describe(ch chan<- *prometheus.Desc) { ch <- f.d }
func (f failing) Collect(ch chan<- prometheus.Metric) {
	ch <- prometheus.NewInvalidMetric(f.d, errors.New("broken"))
}
