package server

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/berry-gateway/berry/controlplane/internal/httpapi"
	berryv1 "github.com/berry-gateway/berry/pkg/api/berry/v1"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"google.golang.org/grpc/codes"
)

// scrape reads url's Prometheus text exposition over HTTP.
func scrape(t *testing.T, url string) map[string]*dto.MetricFamily {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s", url, resp.Status)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: not the text exposition: %v", url, err)
	}
	return mfs
}

// sample returns the value of the series of name whose labels include want (a
// histogram's sample count), and whether there is one.
func sample(mfs map[string]*dto.MetricFamily, name string, want map[string]string) (float64, bool) {
	mf := mfs[name]
	if mf == nil {
		return 0, false
	}
next:
	for _, m := range mf.GetMetric() {
		have := map[string]string{}
		for _, l := range m.GetLabel() {
			have[l.GetName()] = l.GetValue()
		}
		for k, v := range want {
			if have[k] != v {
				continue next
			}
		}
		switch {
		case m.GetCounter() != nil:
			return m.GetCounter().GetValue(), true
		case m.GetGauge() != nil:
			return m.GetGauge().GetValue(), true
		case m.GetHistogram() != nil:
			return float64(m.GetHistogram().GetSampleCount()), true
		}
	}
	return 0, false
}

// metricsURL serves h's metrics on loopback the way the binary does.
func metricsURL(t *testing.T, h *harness) string {
	t.Helper()
	hs := httptest.NewServer(httpapi.New(httpapi.Options{Metrics: h.srv.Registry()}))
	t.Cleanup(hs.Close)
	return hs.URL + "/metrics"
}

// Every metric the control plane exports, scraped over HTTP after real traffic on
// loopback gRPC: names, labels and values.
func TestMetricsScrape(t *testing.T) {
	h := startWith(t, Options{ScoreInterval: 10 * time.Millisecond})
	url := metricsURL(t, h)
	if v, ok := sample(scrape(t, url), metricConfigVersion, nil); !ok || v != 0 {
		t.Fatalf("%s on an empty store = %v, %v; want 0", metricConfigVersion, v, ok)
	}
	h.seed(t) // version 1
	admin := h.admin(t, adminTok)
	// A refused write: the store update ran and said no.
	_, err := admin.PutModel(ctxT(t), &berryv1.PutModelRequest{Model: &berryv1.Model{Id: "bad", Name: "bad", Strategy: "nope"}})
	wantCode(t, "invalid put", err, codes.InvalidArgument)
	// Refused before its request is read: auth.Guard runs before any interceptor.
	_, err = h.admin(t, "").ListProviders(ctxT(t), &berryv1.ListProvidersRequest{})
	wantCode(t, "no token", err, codes.Unauthenticated)
	// A method nobody registered makes no series.
	err = h.conn(t, adminTok).Invoke(ctxT(t), "/berry.v1.AdminService/NoSuchMethod", &berryv1.GetConfigRequest{}, &berryv1.GetConfigResponse{})
	wantCode(t, "unknown method", err, codes.Unimplemented)

	// One edge ACKs version 1, one NACKs it with a validation error of two lines, and
	// the first reports one batch of two backends.
	acker, _ := openSync(t, h, &berryv1.Hello{EdgeId: "acker"})
	nacker, _ := openSync(t, h, &berryv1.Hello{EdgeId: "nacker"})
	for _, e := range []struct {
		s   berryv1.EdgeService_SyncClient
		ack *berryv1.SnapshotAck
	}{
		{acker, &berryv1.SnapshotAck{Version: 1, Accepted: true}},
		{nacker, &berryv1.SnapshotAck{Version: 1, ErrorDetail: "snapshot 1: invalid config:\nmodels.gpt.strategy: unknown strategy \"x\"\nusers.u.id: required"}},
	} {
		for {
			msg, err := e.s.Recv()
			if err != nil {
				t.Fatal(err)
			}
			if msg.GetSnapshot() != nil {
				break
			}
		}
		if err := e.s.Send(&berryv1.SyncRequest{Kind: &berryv1.SyncRequest_Ack{Ack: e.ack}}); err != nil {
			t.Fatal(err)
		}
	}
	batch := &berryv1.ObservationBatch{Backends: []*berryv1.BackendObservation{
		{Provider: "openai", UpstreamModel: "gpt-4o", LatencySeconds: 0.2, Samples: 1, Requests: 1},
		{Provider: "openai", UpstreamModel: "gpt-4o-mini", LatencySeconds: 0.1, Samples: 1, Requests: 1},
	}}
	if err := acker.Send(&berryv1.SyncRequest{Kind: &berryv1.SyncRequest_Observations{Observations: batch}}); err != nil {
		t.Fatal(err)
	}
	fs := waitFleet(t, h, "the ACK, the NACK and the batch", func(fs *berryv1.FleetStatusResponse) bool {
		var acked, nacked bool
		for _, e := range fs.GetEdges() {
			acked = acked || e.GetEdgeId() == "acker" && e.GetAppliedVersion() == 1
			nacked = nacked || e.GetEdgeId() == "nacker" && e.GetLastNack() != ""
		}
		return acked && nacked && h.srv.scoring.observed.Load() == 2
	})
	for _, e := range fs.GetEdges() {
		if e.GetEdgeId() == "nacker" && e.GetLastNack() != `snapshot 1: invalid config: models.gpt.strategy: unknown strategy "x"; users.u.id: required` {
			t.Fatalf("NACK reason not on one line: %q", e.GetLastNack())
		}
	}

	var mfs map[string]*dto.MetricFamily
	deadline := time.Now().Add(10 * time.Second)
	for {
		mfs = scrape(t, url)
		// Scores reach the edges on their next merge.
		if v, _ := sample(mfs, metricScorePushes, nil); v >= 2 || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	grpcLabels := func(method, code string) map[string]string {
		l := map[string]string{"grpc_type": "unary", "grpc_service": "berry.v1.AdminService", "grpc_method": method}
		if code != "" {
			l["grpc_code"] = code
		}
		return l
	}
	for _, tt := range []struct {
		name    string
		labels  map[string]string
		want    float64
		atLeast bool
	}{
		{metricConfigVersion, nil, 1, false},
		{metricStoreUpdate, map[string]string{"result": "committed"}, 1, false},
		{metricStoreUpdate, map[string]string{"result": "refused"}, 1, false},
		{"grpc_server_handled_total", grpcLabels("ApplyConfig", "OK"), 1, false},
		{"grpc_server_handled_total", grpcLabels("PutModel", "InvalidArgument"), 1, false},
		{"grpc_server_handled_total", grpcLabels("ListProviders", "Unauthenticated"), 1, false},
		{"grpc_server_handling_seconds", grpcLabels("ApplyConfig", ""), 1, false},
		{metricEdgesConnected, map[string]string{"applied_version": "1"}, 1, false},
		{metricEdgesConnected, map[string]string{"applied_version": "0"}, 1, false},
		{metricEdgesBehind, nil, 1, false},
		{metricEdgesDisconnected, nil, 0, false},
		{metricAcks, nil, 1, false},
		{metricNacks, map[string]string{"reason": "invalid_config"}, 1, false},
		{metricNacks, map[string]string{"reason": "other"}, 0, false},
		{metricSnapshotsSent, nil, 2, false},
		{metricObservationBatches, nil, 1, false},
		{metricObservations, nil, 2, false},
		{metricScoreMerges, nil, 1, true},
		{metricScorePushes, nil, 2, true},
	} {
		got, ok := sample(mfs, tt.name, tt.labels)
		if !ok || (!tt.atLeast && got != tt.want) || (tt.atLeast && got < tt.want) {
			t.Errorf("%s%v = %v (present %v), want %v", tt.name, tt.labels, got, ok, tt.want)
		}
	}
	for _, m := range mfs["grpc_server_handled_total"].GetMetric() {
		for _, l := range m.GetLabel() {
			if l.GetName() == "grpc_method" && l.GetValue() == "NoSuchMethod" {
				t.Errorf("a series for an unregistered method: %v", m)
			}
		}
	}
	// Edge series follow the fleet: a closed stream leaves the connected count.
	nacker.CloseSend()
	waitFleet(t, h, "nacker gone", func(fs *berryv1.FleetStatusResponse) bool {
		for _, e := range fs.GetEdges() {
			if e.GetEdgeId() == "nacker" {
				return !e.GetConnected()
			}
		}
		return false
	})
	mfs = scrape(t, url)
	if _, ok := sample(mfs, metricEdgesConnected, map[string]string{"applied_version": "0"}); ok {
		t.Error("a series for a version no connected edge holds")
	}
	if v, _ := sample(mfs, metricEdgesDisconnected, nil); v != 1 {
		t.Errorf("%s = %v, want 1", metricEdgesDisconnected, v)
	}
	if v, _ := sample(mfs, metricEdgesBehind, nil); v != 0 {
		t.Errorf("%s = %v, want 0", metricEdgesBehind, v)
	}

	// client_golang's own lint: names, units, help.
	problems, err := testutil.GatherAndLint(h.srv.Registry())
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("lint: %s: %s", p.Metric, p.Text)
	}
}

func TestNackReason(t *testing.T) {
	for detail, want := range map[string]string{
		"snapshot is older than the applied version (got 3, serving 5)":        "older",
		"snapshot 4: invalid config: models.m.backends[0].weight: must be > 0": "invalid_config",
		`snapshot 4: providers.p: unknown backend_type "new"`:                  "unsupported",
		`snapshot 4: models.m.strategy: unknown strategy "new"`:                "unsupported",
		"snapshot 4 has no config":                                             "other",
		"":                                                                     "other",
	} {
		if got := nackNames[nackReason(detail)]; got != want {
			t.Errorf("nackReason(%q) = %s, want %s", detail, got, want)
		}
	}
}

// The metrics are the server's own: two servers in one process do not share them.
func TestMetricsPerServer(t *testing.T) {
	a, b := start(t), start(t)
	a.seed(t)
	if v, _ := sample(scrape(t, metricsURL(t, b)), metricConfigVersion, nil); v != 0 {
		t.Fatalf("the other server's version shows: %v", v)
	}
	if v, _ := sample(scrape(t, metricsURL(t, a)), metricConfigVersion, nil); v != 1 {
		t.Fatalf("version %v, want 1", v)
	}
}

// Status messages are one line: a validation error lists its problems with "; "
// after "invalid config: ", with no stray separator.
func TestStatusMessagesAreOneLine(t *testing.T) {
	h := start(t)
	h.seed(t)
	_, err := h.admin(t, adminTok).PutModel(ctxT(t), &berryv1.PutModelRequest{Model: &berryv1.Model{Id: "m", Name: "m", Strategy: "nope"}})
	wantCode(t, "invalid put", err, codes.InvalidArgument)
	msg := err.Error()
	if strings.Contains(msg, "\n") || strings.Contains(msg, ":;") || !strings.Contains(msg, "invalid config: models.m.") || !strings.Contains(msg, "; models.m.") {
		t.Fatalf("message %q", msg)
	}
}
