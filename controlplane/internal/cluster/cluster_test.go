package cluster

import (
	"context"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/berry-gateway/berry/controlplane/internal/store"
	berryv1 "github.com/berry-gateway/berry/pkg/api/berry/v1"
)

// freeAddr returns a loopback address nothing listens on now.
func freeAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

type member struct {
	id, addr, dir string
	advertise     string // the address the others dial, when not addr
	st            *store.Store
	node          *Node
	mu            sync.Mutex
	versions      []uint64
}

func (m *member) seen() []uint64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]uint64(nil), m.versions...)
}

func newMember(t *testing.T, id string) *member {
	t.Helper()
	return &member{id: id, addr: freeAddr(t), dir: t.TempDir()}
}

func (m *member) start(t *testing.T, secret string, peers []Peer) {
	t.Helper()
	st, err := store.Open(filepath.Join(m.dir, "berry.db"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	m.st = st
	n, err := Start(context.Background(), Config{
		NodeID: m.id, RaftAddress: m.addr, RaftAdvertise: m.advertise, GRPCAddress: "grpc-" + m.id, Peers: peers, Secret: []byte(secret),
		Dir: filepath.Join(m.dir, "raft"), Store: st,
		OnVersion: func(v *berryv1.ConfigVersion) {
			m.mu.Lock()
			m.versions = append(m.versions, v.GetVersion())
			m.mu.Unlock()
		},
		HeartbeatTimeout: 200 * time.Millisecond, ElectionTimeout: 200 * time.Millisecond, LeaderLeaseTimeout: 100 * time.Millisecond,
		SnapshotThreshold: 16, TrailingLogs: 4, SnapshotInterval: 100 * time.Millisecond,
	})
	if err != nil {
		st.Close()
		t.Fatal(err)
	}
	m.node = n
}

func (m *member) stop(t *testing.T) {
	t.Helper()
	if m.node == nil {
		return
	}
	if err := m.node.Shutdown(); err != nil {
		t.Log("shutdown:", err)
	}
	m.st.Close()
	m.node = nil
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func leaderOf(t *testing.T, ms []*member) *member {
	t.Helper()
	var l *member
	waitFor(t, "a leader", func() bool {
		for _, m := range ms {
			if m.node != nil && m.node.Leading() {
				l = m
				return true
			}
		}
		return false
	})
	return l
}

// write proposes the next version on the leader, as the server does.
func write(ctx context.Context, m *member, msg string) error {
	v, _, err := m.st.Prepare(ctx, store.UpdateRequest{Mutate: func(*berryv1.Config) error { return nil }, Author: "test", Message: msg})
	if err != nil {
		return err
	}
	return m.node.Apply(ctx, &berryv1.RaftEntry{Entry: &berryv1.RaftEntry_Version{Version: v}})
}

func current(t *testing.T, m *member) uint64 {
	t.Helper()
	v, err := m.st.Current(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return v.GetVersion()
}

// TestReplication runs three members on loopback: writes on the leader reach every
// member's file with the same versions and lineage, a follower refuses to propose, a
// member is replaced by a new one that catches up from a snapshot (the log is
// compacted), and the whole cluster restarted keeps its state without applying an
// entry twice.
func TestReplication(t *testing.T) {
	ctx := context.Background()
	ms := []*member{newMember(t, "n1"), newMember(t, "n2"), newMember(t, "n3")}
	var peers []Peer
	for _, m := range ms {
		peers = append(peers, Peer{m.id, m.addr})
	}
	for _, m := range ms {
		m.start(t, "s3cret", peers)
	}
	t.Cleanup(func() {
		for _, m := range ms {
			m.stop(t)
		}
	})
	l := leaderOf(t, ms)
	for i := range 40 {
		if err := write(ctx, l, fmt.Sprint("w", i)); err != nil {
			t.Fatal(err)
		}
	}
	for _, m := range ms {
		waitFor(t, m.id+" at version 40", func() bool { return current(t, m) == 40 })
		if m.st.Lineage() != l.st.Lineage() {
			t.Fatalf("%s lineage %s, leader's %s", m.id, m.st.Lineage(), l.st.Lineage())
		}
	}
	for _, m := range ms {
		if m == l {
			continue
		}
		if err := write(ctx, m, "on a follower"); !errors.Is(err, ErrNotLeader) {
			t.Fatalf("write on follower %s: %v, want ErrNotLeader", m.id, err)
		}
		if id, addr := m.node.Leader(); id != l.id || addr != "grpc-"+l.id {
			t.Fatalf("%s sees leader %q at %q, want %s", m.id, id, addr, l.id)
		}
	}
	// Stale entry: refused alike everywhere.
	stale := &berryv1.ConfigVersion{Version: 7, Config: &berryv1.Config{}}
	if err := l.node.Apply(ctx, &berryv1.RaftEntry{Entry: &berryv1.RaftEntry_Version{Version: stale}}); !errors.Is(err, store.ErrStale) {
		t.Fatalf("stale entry: %v, want ErrStale", err)
	}
	waitFor(t, "a snapshot on the leader", func() bool {
		st, _ := l.node.Status(ctx)
		return st.GetLastSnapshotIndex() > 0
	})

	// Replace a follower with a new member: it gets the state from a snapshot.
	var gone *member
	for _, m := range ms {
		if m != l {
			gone = m
			break
		}
	}
	if err := l.node.RemoveMember(ctx, gone.id); err != nil {
		t.Fatal(err)
	}
	gone.stop(t)
	n4 := newMember(t, "n4")
	n4.start(t, "s3cret", nil)
	t.Cleanup(func() { n4.stop(t) })
	if err := l.node.AddMember(ctx, "n4", n4.addr); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "n4 at version 40", func() bool { return current(t, n4) == 40 })
	if n4.st.Lineage() != l.st.Lineage() {
		t.Fatalf("n4 lineage %s, leader's %s", n4.st.Lineage(), l.st.Lineage())
	}
	if err := write(ctx, l, "after n4"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "n4 at version 41", func() bool { return current(t, n4) == 41 })

	// A member without the secret is refused.
	intruder := newMember(t, "n5")
	intruder.start(t, "wrong", nil)
	t.Cleanup(func() { intruder.stop(t) })
	if err := l.node.AddMember(ctx, "n5", intruder.addr); err == nil {
		// Adding succeeds (the configuration is the leader's), but no entry reaches it.
		time.Sleep(time.Second)
	}
	if current(t, intruder) != 0 {
		t.Fatal("a member with the wrong secret received entries")
	}
	if err := l.node.RemoveMember(ctx, "n5"); err != nil {
		t.Fatal(err)
	}
	if intruder.node.stream.Refused() == 0 && l.node.stream.Refused() == 0 {
		t.Fatal("no connection was refused at the handshake")
	}

	// Restart everyone left: state intact, nothing applied twice.
	live := []*member{}
	for _, m := range append(ms, n4) {
		if m.node != nil {
			live = append(live, m)
		}
	}
	for _, m := range live {
		m.stop(t)
	}
	for _, m := range live {
		m.versions = nil
		m.start(t, "s3cret", peers) // ignored: the configuration is in the log
	}
	l = leaderOf(t, live)
	if err := write(ctx, l, "after restart"); err != nil {
		t.Fatal(err)
	}
	for _, m := range live {
		waitFor(t, m.id+" at version 42", func() bool { return current(t, m) == 42 })
		if got := m.seen(); len(got) != 1 || got[0] != 42 {
			t.Fatalf("%s applied versions %v after the restart, want only [42]", m.id, got)
		}
	}
}

// TestBootstrapRefusesData: a file with versions cannot seed a multi-node cluster.
func TestBootstrapRefusesData(t *testing.T) {
	m := newMember(t, "n1")
	st, err := store.Open(filepath.Join(m.dir, "berry.db"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := st.Update(context.Background(), store.UpdateRequest{Mutate: func(*berryv1.Config) error { return nil }}); err != nil {
		t.Fatal(err)
	}
	_, err = Start(context.Background(), Config{NodeID: "n1", RaftAddress: m.addr, Peers: []Peer{{"n1", m.addr}, {"n2", freeAddr(t)}},
		Secret: []byte("x"), Dir: filepath.Join(m.dir, "raft"), Store: st})
	st.Close()
	if err == nil {
		t.Fatal("bootstrapping three members on a file with data succeeded")
	}
}

func TestParsePeers(t *testing.T) {
	for _, tc := range []struct {
		in   string
		n    int
		fail bool
	}{
		{"n1=127.0.0.1:7001,n2=127.0.0.1:7002,n3=127.0.0.1:7003", 3, false},
		{"n1=127.0.0.1:7001", 1, false},
		{"n1", 0, true},
		{"n1=nope", 0, true},
		{"n1=127.0.0.1:1,n1=127.0.0.1:2", 0, true},
	} {
		ps, err := ParsePeers(tc.in)
		if (err != nil) != tc.fail || len(ps) != tc.n {
			t.Errorf("ParsePeers(%q) = %v, %v", tc.in, ps, err)
		}
	}
}

// TestRaftAdvertise: members that listen on one address and are dialled at another
// (a wildcard listen and a name, as in Kubernetes) form a cluster under the
// advertised addresses; --peers must give a member its advertised address.
func TestRaftAdvertise(t *testing.T) {
	var ms []*member
	var peers []Peer
	for _, id := range []string{"n1", "n2", "n3"} {
		m := newMember(t, id)
		_, port, err := net.SplitHostPort(m.addr)
		if err != nil {
			t.Fatal(err)
		}
		m.addr, m.advertise = net.JoinHostPort("0.0.0.0", port), net.JoinHostPort("localhost", port)
		ms = append(ms, m)
		peers = append(peers, Peer{ID: id, Addr: m.advertise})
	}
	for _, m := range ms {
		m.start(t, "an advertised secret", peers)
		t.Cleanup(func() { m.stop(t) })
	}
	l := leaderOf(t, ms)
	if err := write(context.Background(), l, "advertised"); err != nil {
		t.Fatal(err)
	}
	for _, m := range ms {
		waitFor(t, m.id+" applies the write", func() bool { return current(t, m) == 1 })
	}
	st, err := l.node.Status(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, mem := range st.GetMembers() {
		if !strings.HasPrefix(mem.GetRaftAddress(), "localhost:") {
			t.Errorf("member %s at %s, want its advertised address", mem.GetId(), mem.GetRaftAddress())
		}
	}

	// A member whose advertised address is not the one --peers gives it is refused.
	m := newMember(t, "n4")
	_, err = Start(context.Background(), Config{NodeID: "n4", RaftAddress: m.addr, RaftAdvertise: "localhost:1",
		Peers: []Peer{{"n4", m.addr}}, Secret: []byte("s"), Dir: t.TempDir(), Store: nil})
	if err == nil || !strings.Contains(err.Error(), "--raft-advertise") {
		t.Fatalf("peers giving the listen address, not the advertised one: %v", err)
	}
}
