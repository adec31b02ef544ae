package tracing

import (
	"context"
	"testing"
)

func TestEnabled(t *testing.T) {
	for _, tc := range []struct {
		env  map[string]string
		want bool
	}{
		{map[string]string{}, false},
		{map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"}, true},
		{map[string]string{"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://127.0.0.1:4318/v1/traces"}, true},
		{map[string]string{"OTEL_TRACES_EXPORTER": "otlp"}, true},
		{map[string]string{"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://x"}, false},
		{map[string]string{"OTEL_SDK_DISABLED": "true", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://x"}, false},
	} {
		if got := Enabled(func(k string) string { return tc.env[k] }); got != tc.want {
			t.Errorf("%v: %v, want %v", tc.env, got, tc.want)
		}
	}
}

func TestFromEnv(t *testing.T) {
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "")
	if s, err := FromEnv(context.Background(), "berry-edge", "e1", "dev"); s != nil || err != nil {
		t.Fatalf("tracing on without asking: %v %v", s, err)
	}
	for _, tc := range []struct {
		protocol string
		ok       bool
	}{{"grpc", true}, {"http/protobuf", true}, {"", true}, {"http/json", false}} {
		t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:1")
		t.Setenv("OTEL_EXPORTER_OTLP_PROTOCOL", tc.protocol)
		t.Setenv("OTEL_SERVICE_NAME", "edge-a")
		s, err := FromEnv(context.Background(), "berry-edge", "e1", "dev")
		if (err == nil) != tc.ok {
			t.Fatalf("protocol %q: %v", tc.protocol, err)
		}
		if s != nil {
			if s.Tracer == nil {
				t.Fatal("no tracer")
			}
			ctx, cancel := context.WithCancel(context.Background())
			cancel() // nothing listens: do not wait for the export
			_ = s.Shutdown(ctx)
		}
	}
	t.Setenv("OTEL_TRACES_EXPORTER", "zipkin")
	if _, err := FromEnv(context.Background(), "berry-edge", "e1", "dev"); err == nil {
		t.Fatal("OTEL_TRACES_EXPORTER=zipkin accepted")
	}
}
