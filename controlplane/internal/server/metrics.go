package server

import (
	"context"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/stats"
	"google.golang.org/grpc/status"
)

// Metric names the control plane exports besides the gRPC server's (grpc_server_*),
// which follow the names of the grpc-ecosystem middleware so that existing
// dashboards work.
const (
	metricConfigVersion      = "berry_controlplane_config_version"
	metricStoreUpdate        = "berry_controlplane_store_update_duration_seconds"
	metricEdgesConnected     = "berry_controlplane_edges_connected"
	metricEdgesBehind        = "berry_controlplane_edges_behind"
	metricEdgesDisconnected  = "berry_controlplane_edges_disconnected"
	metricSnapshotsSent      = "berry_controlplane_snapshots_sent_total"
	metricAcks               = "berry_controlplane_snapshot_acks_total"
	metricNacks              = "berry_controlplane_snapshot_nacks_total"
	metricObservationBatches = "berry_controlplane_observation_batches_total"
	metricObservations       = "berry_controlplane_backend_observations_total"
	metricScoreMerges        = "berry_controlplane_score_merges_total"
	metricScorePushes        = "berry_controlplane_score_pushes_total"
)

// Results of a store update, the label of metricStoreUpdate.
const (
	updateCommitted = "committed" // a new version was written
	updateUnchanged = "unchanged" // a bootstrap found the store not empty
	updateRefused   = "refused"   // invalid, stale, naming what does not exist
	updateFailed    = "failed"    // the control plane's own failure (I/O, full disk)
)

// NACK reasons, the label of metricNacks. An edge's NACK carries free text; the
// metric keeps a few classes, so that an edge cannot grow the series without bound.
const (
	nackOlder         = iota // the edge serves a newer version of the same lineage
	nackInvalidConfig        // the edge's validation refused the config
	nackUnsupported          // a provider kind or strategy the edge's build does not have
	nackOther
	numNackReasons
)

var nackNames = [numNackReasons]string{"older", "invalid_config", "unsupported", "other"}

// nackReason classifies a NACK's text, as the edge's cpsync and routing word it.
func nackReason(detail string) int {
	switch {
	case strings.Contains(detail, "older than the applied version"):
		return nackOlder
	case strings.Contains(detail, "invalid config"):
		return nackInvalidConfig
	case strings.Contains(detail, ": providers."), strings.Contains(detail, ".strategy:"):
		return nackUnsupported
	}
	return nackOther
}

// metrics are the control plane's Prometheus metrics. The services count in plain
// atomics and collector reads them at scrape time; only the histograms and the
// gRPC counters (labelled by method) are client_golang's own.
type metrics struct {
	grpcHandled *prometheus.CounterVec
	grpcSeconds *prometheus.HistogramVec
	storeUpdate *prometheus.HistogramVec
	// methods labels the calls of every registered method; grpc-go reports no
	// other, but the set keeps the labels bounded whatever a client asks for.
	methods atomic.Pointer[map[string]methodLabels]
}

type methodLabels struct{ typ, service, method string }

func newMetrics(reg prometheus.Registerer, s *Server) *metrics {
	m := &metrics{
		grpcHandled: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "grpc_server_handled_total",
			Help: "RPCs completed on the server, by method and gRPC status code (refusals before a request is read included).",
		}, []string{"grpc_type", "grpc_service", "grpc_method", "grpc_code"}),
		grpcSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "grpc_server_handling_seconds",
			Help: "Time from the start of an RPC to its end, by method (streams: their whole life).",
			// Reads take well under a millisecond, writes an fsync.
			Buckets: prometheus.ExponentialBuckets(0.0005, 4, 10),
		}, []string{"grpc_type", "grpc_service", "grpc_method"}),
		storeUpdate: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: metricStoreUpdate,
			Help: "Time of one config write's store transaction (read, change, validate, write, fsync), by result: committed, unchanged, refused, failed.",
			// bbolt's commit is an fsync: from a fraction of a millisecond on a local
			// SSD to seconds on a struggling network disk.
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14),
		}, []string{"result"}),
	}
	reg.MustRegister(m.grpcHandled, m.grpcSeconds, m.storeUpdate, &collector{s: s})
	return m
}

// learnMethods records the methods gs serves, once every service is registered.
func (m *metrics) learnMethods(gs *grpc.Server) {
	known := make(map[string]methodLabels)
	for service, info := range gs.GetServiceInfo() {
		for _, mi := range info.Methods {
			typ := "unary"
			switch {
			case mi.IsClientStream && mi.IsServerStream:
				typ = "bidi_stream"
			case mi.IsClientStream:
				typ = "client_stream"
			case mi.IsServerStream:
				typ = "server_stream"
			}
			known["/"+service+"/"+mi.Name] = methodLabels{typ: typ, service: service, method: mi.Name}
		}
	}
	m.methods.Store(&known)
}

// observeUpdate records one store update of result that took d.
func (m *metrics) observeUpdate(result string, d time.Duration) {
	if m != nil {
		m.storeUpdate.WithLabelValues(result).Observe(d.Seconds())
	}
}

// grpcStats counts RPCs as a stats handler rather than an interceptor: it sees the
// calls auth.Guard refuses before any interceptor runs, and requests the codec
// refuses as too large.
type grpcStats struct{ m *metrics }

type methodKey struct{}

// TagRPC implements stats.Handler.
func (h grpcStats) TagRPC(ctx context.Context, info *stats.RPCTagInfo) context.Context {
	return context.WithValue(ctx, methodKey{}, info.FullMethodName)
}

// HandleRPC implements stats.Handler.
func (h grpcStats) HandleRPC(ctx context.Context, s stats.RPCStats) {
	end, ok := s.(*stats.End)
	if !ok {
		return
	}
	known := h.m.methods.Load()
	if known == nil {
		return
	}
	name, _ := ctx.Value(methodKey{}).(string)
	l, ok := (*known)[name]
	if !ok {
		return
	}
	h.m.grpcHandled.WithLabelValues(l.typ, l.service, l.method, status.Code(end.Error).String()).Inc()
	h.m.grpcSeconds.WithLabelValues(l.typ, l.service, l.method).Observe(end.EndTime.Sub(end.BeginTime).Seconds())
}

// TagConn implements stats.Handler.
func (grpcStats) TagConn(ctx context.Context, _ *stats.ConnTagInfo) context.Context { return ctx }

// HandleConn implements stats.Handler.
func (grpcStats) HandleConn(context.Context, stats.ConnStats) {}

var (
	descConfigVersion = prometheus.NewDesc(metricConfigVersion,
		"Current config version, the one pushed to edges (0 for an empty store).", nil, nil)
	descEdgesConnected = prometheus.NewDesc(metricEdgesConnected,
		"Edges with an open stream, by the config version each has applied.", []string{"applied_version"}, nil)
	descEdgesBehind = prometheus.NewDesc(metricEdgesBehind,
		"Connected edges that have not applied the current config version.", nil, nil)
	descEdgesDisconnected = prometheus.NewDesc(metricEdgesDisconnected,
		"Edges whose stream closed within the edge expiry (FleetStatus still lists them).", nil, nil)
	descSnapshotsSent = prometheus.NewDesc(metricSnapshotsSent,
		"Config snapshots sent to edges.", nil, nil)
	descAcks = prometheus.NewDesc(metricAcks,
		"Snapshots edges applied (ACKs).", nil, nil)
	descNacks = prometheus.NewDesc(metricNacks,
		"Snapshots edges refused (NACKs), by reason: older, invalid_config, unsupported (a provider kind or strategy the edge's build lacks), other.", []string{"reason"}, nil)
	descBatches = prometheus.NewDesc(metricObservationBatches,
		"Observation batches received from edges.", nil, nil)
	descObservations = prometheus.NewDesc(metricObservations,
		"Backend observations absorbed into the fleet scores.", nil, nil)
	descMerges = prometheus.NewDesc(metricScoreMerges,
		"Fleet-score merges published.", nil, nil)
	descPushes = prometheus.NewDesc(metricScorePushes,
		"Fleet-score messages sent to edges (one per edge per merge it received).", nil, nil)
)

// collector exposes, at scrape time, what the services count and the fleet's state.
// Edge series exist only for the versions connected edges hold.
type collector struct{ s *Server }

// Describe implements prometheus.Collector.
func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descConfigVersion, descEdgesConnected, descEdgesBehind, descEdgesDisconnected,
		descSnapshotsSent, descAcks, descNacks, descBatches, descObservations, descMerges, descPushes} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *collector) Collect(ch chan<- prometheus.Metric) {
	e, sc := c.s.edge, c.s.scoring
	var current uint64
	if snap, _ := e.snapshots.Watch(); snap != nil {
		current = snap.GetVersion()
	}
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	counter := func(d *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	gauge(descConfigVersion, float64(current))
	byVersion := map[uint64]int{}
	behind, gone := 0, 0
	for _, edge := range e.fleet.List() {
		if !edge.Connected {
			gone++
			continue
		}
		byVersion[edge.AppliedVersion]++
		if edge.AppliedVersion < current {
			behind++
		}
	}
	for v, n := range byVersion {
		gauge(descEdgesConnected, float64(n), strconv.FormatUint(v, 10))
	}
	gauge(descEdgesBehind, float64(behind))
	gauge(descEdgesDisconnected, float64(gone))
	counter(descSnapshotsSent, e.snapshotsSent.Load())
	counter(descAcks, e.acks.Load())
	for i := range e.nacks {
		counter(descNacks, e.nacks[i].Load(), nackNames[i])
	}
	counter(descBatches, sc.batches.Load())
	counter(descObservations, sc.observed.Load())
	counter(descMerges, sc.merges.Load())
	counter(descPushes, e.scoresSent.Load())
}
