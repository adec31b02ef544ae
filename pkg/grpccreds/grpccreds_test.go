package grpccreds

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestErrorsNameTheFlag(t *testing.T) {
	notPEM := filepath.Join(t.TempDir(), "x.pem")
	if err := os.WriteFile(notPEM, []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		err  func() error
		want string
	}{
		{"missing CA", func() error { _, err := Client{CA: "/nonexistent/ca.pem"}.DialOptions(); return err }, "--tls-ca:"},
		{"CA without certificates", func() error { _, err := Client{CA: notPEM}.DialOptions(); return err }, "--tls-ca " + notPEM + ": no PEM certificates"},
		{"key without cert", func() error { _, err := Client{Key: notPEM}.DialOptions(); return err }, "--tls-cert/--tls-key:"},
		{"server CA alone", func() error { _, err := Server("", "", notPEM); return err }, "--tls-client-ca needs --tls-cert and --tls-key"},
		{"server cert alone", func() error { _, err := Server(notPEM, "", ""); return err }, "--tls-cert and --tls-key go together"},
		{"server bad pair", func() error { _, err := Server(notPEM, notPEM, ""); return err }, "--tls-cert/--tls-key:"},
	}
	for _, tc := range tests {
		err := tc.err()
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err %v, want it to contain %q", tc.name, err, tc.want)
		}
	}
}

func TestBearer(t *testing.T) {
	plain, tls := Client{Token: "tok"}, Client{Token: "tok", CA: "ca.pem"}
	if plain.Secure() || !tls.Secure() {
		t.Fatal("Secure does not follow the PEM files")
	}
	md, err := Bearer{Token: "tok"}.GetRequestMetadata(context.Background())
	if err != nil || md["authorization"] != "Bearer tok" {
		t.Fatalf("metadata %v, %v", md, err)
	}
	if !(Bearer{}).RequireTransportSecurity() || (Bearer{AllowPlaintext: true}).RequireTransportSecurity() {
		t.Fatal("RequireTransportSecurity must hold unless plaintext is allowed")
	}
	opts, err := plain.DialOptions()
	if err != nil || len(opts) != 2 {
		t.Fatalf("a token without TLS: %d options, %v; want transport and bearer", len(opts), err)
	}
}
