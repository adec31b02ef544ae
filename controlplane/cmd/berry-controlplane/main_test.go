package main

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestCheckExposure(t *testing.T) {
	tests := []struct {
		name                  string
		listen                string
		tokens, tls, insecure bool
		wantErr               bool
		wantWarn              string
	}{
		{"tokens over TLS anywhere", "0.0.0.0:9090", true, true, false, false, ""},
		{"tokens in cleartext on loopback", "127.0.0.1:9090", true, false, false, false, ""},
		{"tokens in cleartext on the network", "0.0.0.0:9090", true, false, false, false, "tokens over PLAINTEXT gRPC on a non-loopback address"},
		{"tokens in cleartext on a host name", "cp.internal:9090", true, false, false, false, "tokens over PLAINTEXT gRPC"},
		{"no tokens on loopback", "localhost:9090", false, false, false, false, "UNAUTHENTICATED"},
		{"no tokens on the network", "0.0.0.0:9090", false, true, false, true, ""},
		{"no tokens on the network, insecure", "0.0.0.0:9090", false, false, true, false, "UNAUTHENTICATED"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var logs bytes.Buffer
			log := slog.New(slog.NewTextHandler(&logs, nil))
			err := checkExposure(log, tt.listen, tt.tokens, tt.tls, tt.insecure)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, want error %v", err, tt.wantErr)
			}
			if tt.wantWarn == "" && logs.Len() > 0 || !strings.Contains(logs.String(), tt.wantWarn) {
				t.Fatalf("logs %q, want a warning containing %q", logs.String(), tt.wantWarn)
			}
			if tt.wantWarn != "" && !strings.Contains(logs.String(), "level=WARN") {
				t.Fatalf("logs %q: not a warning", logs.String())
			}
		})
	}
}

func TestCheckHTTPExposure(t *testing.T) {
	tests := []struct {
		name            string
		listen          string
		token, insecure bool
		wantErr         bool
		wantWarn        string
	}{
		{"disabled", "", false, false, false, ""},
		{"loopback without a token", "127.0.0.1:9091", false, false, false, ""},
		{"localhost without a token", "localhost:9091", false, false, false, ""},
		{"network with a token", "0.0.0.0:9091", true, false, false, ""},
		{"network without a token", "0.0.0.0:9091", false, false, true, ""},
		{"host name without a token", "cp.internal:9091", false, false, true, ""},
		{"network without a token, insecure", "0.0.0.0:9091", false, true, false, "UNAUTHENTICATED"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var logs bytes.Buffer
			err := checkHTTPExposure(slog.New(slog.NewTextHandler(&logs, nil)), tt.listen, tt.token, tt.insecure)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, want error %v", err, tt.wantErr)
			}
			if err != nil && !strings.Contains(err.Error(), "--insecure") {
				t.Fatalf("err %q does not say how to proceed", err)
			}
			if tt.wantWarn == "" && logs.Len() > 0 || !strings.Contains(logs.String(), tt.wantWarn) {
				t.Fatalf("logs %q, want %q", logs.String(), tt.wantWarn)
			}
		})
	}
}

// Flag errors stop the control plane before it opens anything; errors name the flag.
func TestServeFlagErrors(t *testing.T) {
	dir := t.TempDir()
	blank := filepath.Join(dir, "blank")
	if err := os.WriteFile(blank, []byte("\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	data := filepath.Join(dir, "berry.db")
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"--admin-token", "a", "--admin-token-file", blank}, "--admin-token and --admin-token-file: give one of them"},
		{[]string{"--read-token-file", filepath.Join(dir, "missing")}, "--read-token-file:"},
		{[]string{"--edge-token-file", blank}, "--edge-token-file " + blank + ": no token in the file"},
		{[]string{"--edge-expiry", "-1h"}, "--edge-expiry -1h0m0s: must not be negative"},
		{[]string{"--shutdown-delay", "-1s"}, "--shutdown-delay -1s: must not be negative"},
		{[]string{"--metrics-token", "a", "--metrics-token-file", blank}, "--metrics-token and --metrics-token-file: give one of them"},
		{[]string{"--metrics-token-file", blank}, "--metrics-token-file " + blank + ": no token in the file"},
		{[]string{"--http-listen", "0.0.0.0:9091"}, "--http-listen 0.0.0.0:9091 is not a loopback address and no --metrics-token is set"},
		{[]string{"serve"}, `unknown command "serve"`},
	}
	for _, tt := range tests {
		err := serve(context.Background(), append([]string{"--data", data}, tt.args...), io.Discard)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("run %v: err %v, want it to contain %q", tt.args, err, tt.want)
		}
	}
	if _, err := os.Stat(data); err == nil {
		t.Fatal("the data file was created despite a flag error")
	}
}
