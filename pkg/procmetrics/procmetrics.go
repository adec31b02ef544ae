// Package procmetrics holds the metrics every Berry binary exports whatever its
// role: berry_build_info, and the Go runtime's and the process's standard metrics
// (from Prometheus's client library, which keeps them current).
package procmetrics

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/berry-gateway/berry/pkg/buildinfo"
)

// NewRegistry returns a registry holding them, for a binary to add its own to.
func NewRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	b := buildinfo.Get()
	info := prometheus.NewGauge(prometheus.GaugeOpts{
		Name:        "berry_build_info",
		Help:        "Always 1; the labels say which build this binary is.",
		ConstLabels: prometheus.Labels{"version": b.Version, "revision": b.Revision, "go_version": b.GoVersion},
	})
	info.Set(1)
	reg.MustRegister(info, collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return reg
}
