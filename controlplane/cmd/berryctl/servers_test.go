package main

import (
	"bytes"
	"net"
	"strings"
	"testing"
)

// closedAddr is a loopback address nothing listens on: a stopped node.
func closedAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

// TestSeveralServers: with a cluster's addresses, berryctl reaches whichever node
// answers, from the flag or from BERRY_SERVER, and says which addresses it tried when
// none does; a malformed list is refused before anything is sent.
func TestSeveralServers(t *testing.T) {
	const token = "berryctl-admin-token"
	live := serve(t, token)
	dead1, dead2 := closedAddr(t), closedAddr(t)
	tests := []struct {
		name    string
		flag    string // --server, when set
		env     string // BERRY_SERVER
		wantErr string
	}{
		{name: "first down", flag: dead1 + "," + live},
		{name: "last down", flag: live + "," + dead1},
		{name: "two down, spaces", flag: dead1 + ", " + dead2 + " ," + live},
		{name: "from BERRY_SERVER", env: dead1 + "," + live},
		{name: "the flag wins over BERRY_SERVER", flag: dead1 + "," + live, env: dead2},
		{name: "all down", flag: dead1 + "," + dead2, wantErr: "cannot reach the control plane at " + dead1 + "," + dead2},
		{name: "an empty entry", flag: live + ",," + dead1, wantErr: "address 2 is empty"},
		{name: "no port", flag: live + ",127.0.0.1", wantErr: `address "127.0.0.1": want host:port`},
		{name: "twice", flag: live + "," + live, wantErr: "is listed twice"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("BERRY_SERVER", tc.env)
			t.Setenv("BERRY_TOKEN", token)
			t.Setenv("BERRY_TOKEN_FILE", "")
			args := []string{"--timeout", "5s", "versions"}
			if tc.flag != "" {
				args = append([]string{"--server", tc.flag}, args...)
			}
			var out bytes.Buffer
			err := run(args, &out)
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("versions: %s", oneLine(err))
				}
				if !strings.Contains(out.String(), "VERSION") {
					t.Fatalf("output %q", out.String())
				}
				return
			}
			if err == nil || !strings.Contains(oneLine(err), tc.wantErr) {
				t.Fatalf("err %v, want %q", err, tc.wantErr)
			}
		})
	}
}

// TestWriteGoesOnceThroughAList: a write through a list whose first node is down
// lands once: one new version, not one per address tried.
func TestWriteGoesOnceThroughAList(t *testing.T) {
	const token = "berryctl-admin-token"
	live := serve(t, token)
	t.Setenv("BERRY_TOKEN", token)
	t.Setenv("BERRY_TOKEN_FILE", "")
	t.Setenv("BERRY_SERVER", closedAddr(t)+","+live)
	var out bytes.Buffer
	if err := run([]string{"keys", "create", "--id", "k1"}, &out); err != nil {
		t.Fatalf("keys create: %s", oneLine(err))
	}
	out.Reset()
	if err := run([]string{"versions", "-o", "json"}, &out); err != nil {
		t.Fatalf("versions: %s", oneLine(err))
	}
	if n := strings.Count(out.String(), `"version"`); n != 1 {
		t.Fatalf("%d versions after one write, want 1:\n%s", n, out.String())
	}
}
