// Package httpapi serves the control plane's HTTP address (--http-listen): the
// Prometheus metrics at GET /metrics, the admin API in the Connect protocol for
// browsers and other HTTP clients (MountAPI), and whatever else mounts beside them
// with Handle (the web console). It is one http.ServeMux.
package httpapi

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Options configure New.
type Options struct {
	// Metrics gathers what GET /metrics exposes.
	Metrics prometheus.Gatherer
	// MetricsToken, when set, is the bearer token GET /metrics requires. When empty,
	// /metrics answers loopback clients only, unless OpenMetrics.
	MetricsToken string
	// OpenMetrics serves /metrics to every client when there is no MetricsToken: the
	// operator asked for an unauthenticated control plane (--insecure).
	OpenMetrics bool
	// Log receives the server's errors (default slog.Default()).
	Log *slog.Logger
}

// Server is the HTTP server of the control plane's HTTP address.
type Server struct {
	mux *http.ServeMux
	srv *http.Server
}

// Limits of the HTTP server: no request the control plane serves over HTTP needs
// more, and a client that holds a connection open without sending costs little.
const (
	readHeaderTimeout = 10 * time.Second
	idleTimeout       = 2 * time.Minute
	maxHeaderBytes    = 16 << 10
	// scrapeTimeout bounds one gathering of the metrics.
	scrapeTimeout = 10 * time.Second
)

// New returns the server, with GET /metrics mounted.
func New(opts Options) *Server {
	log := opts.Log
	if log == nil {
		log = slog.Default()
	}
	s := &Server{mux: http.NewServeMux()}
	s.srv = &http.Server{
		Handler:           s.mux,
		ReadHeaderTimeout: readHeaderTimeout,
		IdleTimeout:       idleTimeout,
		MaxHeaderBytes:    maxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	metrics := promhttp.HandlerFor(opts.Metrics, promhttp.HandlerOpts{
		ErrorLog:      promErrorLog{log},
		ErrorHandling: promhttp.ContinueOnError, // one failing collector must not hide the others
		Timeout:       scrapeTimeout,
	})
	s.mux.Handle("GET /metrics", guard(metrics, opts.MetricsToken, opts.OpenMetrics))
	return s
}

// Handle mounts h on pattern (http.ServeMux syntax) beside the metrics.
func (s *Server) Handle(pattern string, h http.Handler) { s.mux.Handle(pattern, h) }

// ServeHTTP implements http.Handler: the routes without the server around them.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.mux.ServeHTTP(w, r) }

// Serve serves on l until Shutdown, after which it returns nil.
func (s *Server) Serve(l net.Listener) error {
	if err := s.srv.Serve(l); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// Shutdown stops accepting connections and waits, until ctx ends, for the requests
// in flight; then it closes what is left.
func (s *Server) Shutdown(ctx context.Context) error {
	err := s.srv.Shutdown(ctx)
	if err != nil {
		_ = s.srv.Close()
	}
	return err
}

// guard lets through the requests that present token (compared in constant time
// over SHA-256s, so neither its content nor its length shows in the timing), or with
// no token those from loopback, or from anyone when open.
func guard(h http.Handler, token string, open bool) http.Handler {
	sum := sha256.Sum256([]byte(token))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !allowed(r, token != "", &sum, open) {
			w.Header().Set("WWW-Authenticate", `Bearer realm="berry-controlplane"`)
			http.Error(w, "metrics need the control plane's metrics token (Authorization: Bearer <token>), or a loopback client when it has none", http.StatusUnauthorized)
			return
		}
		h.ServeHTTP(w, r)
	})
}

func allowed(r *http.Request, hasToken bool, sum *[sha256.Size]byte, open bool) bool {
	if !hasToken {
		return open || loopback(r.RemoteAddr)
	}
	const prefix = "bearer "
	auth := r.Header.Get("Authorization")
	if len(auth) <= len(prefix) || !strings.EqualFold(auth[:len(prefix)], prefix) {
		return false
	}
	got := sha256.Sum256([]byte(strings.TrimSpace(auth[len(prefix):])))
	return subtle.ConstantTimeCompare(got[:], sum[:]) == 1
}

// loopback reports whether a request's remote address is on this host. Behind a
// reverse proxy on the same host every client looks local: set a token there.
func loopback(remoteAddr string) bool {
	host, _, err := net.SplitHostPort(remoteAddr)
	if err != nil {
		return false
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// promErrorLog sends promhttp's gathering errors to the log.
type promErrorLog struct{ log *slog.Logger }

// Println implements promhttp.Logger.
func (l promErrorLog) Println(v ...any) {
	l.log.Warn("gathering metrics failed", "err", fmt.Sprint(v...))
}
