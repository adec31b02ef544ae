package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestClusterFlags: a wrong cluster command line fails before serving, saying what
// is wrong.
func TestClusterFlags(t *testing.T) {
	dir := t.TempDir()
	secret := filepath.Join(dir, "secret")
	short := filepath.Join(dir, "short")
	if err := os.WriteFile(secret, []byte("0123456789abcdef0123456789abcdef\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(short, []byte("tiny"), 0o600); err != nil {
		t.Fatal(err)
	}
	three := "n1=127.0.0.1:7001,n2=127.0.0.1:7002,n3=127.0.0.1:7003"
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"node id alone", []string{"--node-id", "n1"}, "need --raft-listen"},
		{"no node id", []string{"--raft-listen", "127.0.0.1:7001", "--peers", three, "--raft-secret-file", secret}, "needs --node-id and --raft-listen"},
		{"no secret for three", []string{"--node-id", "n1", "--raft-listen", "127.0.0.1:7001", "--peers", three}, "--raft-secret-file is required"},
		{"short secret", []string{"--node-id", "n1", "--raft-listen", "127.0.0.1:7001", "--peers", three, "--raft-secret-file", short}, "at least 16 bytes"},
		{"bad peers", []string{"--node-id", "n1", "--raft-listen", "127.0.0.1:7001", "--peers", "n1", "--raft-secret-file", secret}, "--peers: peer \"n1\": want id=host:port"},
		{"peers without this node", []string{"--node-id", "n9", "--raft-listen", "127.0.0.1:7009", "--peers", three, "--raft-secret-file", secret}, "--peers does not name this node (n9)"},
		{"address mismatch", []string{"--node-id", "n1", "--raft-listen", "127.0.0.1:7011", "--peers", three, "--raft-secret-file", secret}, "but --raft-listen is 127.0.0.1:7011"},
		{"advertised address mismatch", []string{"--node-id", "n1", "--raft-listen", ":7001", "--raft-advertise", "127.0.0.1:7011", "--peers", three, "--raft-secret-file", secret}, "but --raft-advertise is 127.0.0.1:7011"},
		{"advertise alone", []string{"--raft-advertise", "127.0.0.1:7001"}, "need --raft-listen"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := append([]string{"--data", filepath.Join(t.TempDir(), "berry.db"), "--http-listen", "", "--grpc-listen", "127.0.0.1:0"}, tc.args...)
			var out, errOut bytes.Buffer
			if code := runMain(args, &out, &errOut); code != 1 || !strings.Contains(errOut.String(), tc.want) {
				t.Fatalf("exit %d, stderr %q; want 1 and %q", code, errOut.String(), tc.want)
			}
		})
	}
}
