package main

import (
	"bytes"
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
	}
	for _, tt := range tests {
		err := run(append([]string{"--data", data}, tt.args...))
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("run %v: err %v, want it to contain %q", tt.args, err, tt.want)
		}
	}
	if _, err := os.Stat(data); err == nil {
		t.Fatal("the data file was created despite a flag error")
	}
}
