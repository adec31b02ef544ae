// Package cluster replicates the control plane's store over Raft (hashicorp/raft):
// every change of the data file is an entry of the log, applied on every member once a
// majority holds it, so any member serves the same versions and a majority survives
// the loss of the others. The log and Raft's own state live in a bbolt file of their
// own (raft-boltdb); the applied state is the store's file, as in one-node mode.
package cluster

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/berry-gateway/berry/controlplane/internal/store"
	berryv1 "github.com/berry-gateway/berry/pkg/api/berry/v1"
	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
	bolt "go.etcd.io/bbolt"
	"google.golang.org/protobuf/proto"
)

var (
	// ErrNotLeader is returned for a change proposed on a member that does not lead:
	// the caller forwards it to the leader.
	ErrNotLeader = errors.New("this control plane is not the cluster's leader")
	// ErrLeadershipLost is returned when the leader lost its leadership while a
	// change was in flight: it may or may not be applied.
	ErrLeadershipLost = errors.New("leadership lost while the change was being replicated: it may or may not have been applied")
)

// Peer is one member of the bootstrap configuration.
type Peer struct {
	ID, Addr string
}

// ParsePeers parses --peers: id=host:port pairs separated by commas.
func ParsePeers(s string) ([]Peer, error) {
	var out []Peer
	seen := map[string]bool{}
	for part := range strings.SplitSeq(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		id, addr, ok := strings.Cut(part, "=")
		if !ok || id == "" || addr == "" {
			return nil, fmt.Errorf("peer %q: want id=host:port", part)
		}
		if _, _, err := net.SplitHostPort(addr); err != nil {
			return nil, fmt.Errorf("peer %q: %w", part, err)
		}
		if seen[id] {
			return nil, fmt.Errorf("peer %q named twice", id)
		}
		seen[id] = true
		out = append(out, Peer{ID: id, Addr: addr})
	}
	return out, nil
}

// Log and snapshot defaults: a snapshot every DefaultSnapshotThreshold entries, of
// which DefaultTrailingLogs stay in the log so that a follower a little behind
// catches up from the log rather than from a whole snapshot.
const (
	DefaultSnapshotThreshold = 4096
	DefaultTrailingLogs      = 1024
	DefaultSnapshotInterval  = 30 * time.Second
	// snapshotsRetained is how many snapshots stay on disk.
	snapshotsRetained = 2
)

// Config configures Start.
type Config struct {
	// NodeID names this member; RaftAddress is where its Raft transport listens
	// and, unless RaftAdvertise is set, what the others dial; GRPCAddress is where
	// its gRPC API serves, told to the other members so they can forward writes
	// here when it leads.
	NodeID, RaftAddress, GRPCAddress string
	// RaftAdvertise is the Raft address the others dial when it is not the one
	// listened on (a wildcard listen, a name that resolves only once the member
	// runs, as a Kubernetes pod's). It is this member's address in the membership.
	RaftAdvertise string
	// Peers is the bootstrap configuration (this node included). Empty: the node
	// waits to be added by the leader (AddMember).
	Peers []Peer
	// Secret authenticates and encrypts Raft traffic (see transport.go).
	Secret []byte
	// Dir holds the Raft log and snapshots.
	Dir string
	// Store is the applied state.
	Store *store.Store
	// OnVersion is called with every config version applied, in order.
	OnVersion func(*berryv1.ConfigVersion)
	// OnLeader is called when this member becomes the leader (once its state holds
	// every committed entry) and when it stops being it.
	OnLeader func(leading bool)
	Log      *slog.Logger
	// Raft timing and compaction; zero values take Raft's defaults and the ones
	// above. Tests shorten them.
	HeartbeatTimeout, ElectionTimeout, LeaderLeaseTimeout time.Duration
	SnapshotThreshold, TrailingLogs                       uint64
	SnapshotInterval                                      time.Duration
}

// Node is this process's member of the cluster.
type Node struct {
	cfg    Config
	raft   *raft.Raft
	logs   *raftboltdb.BoltStore
	trans  *raft.NetworkTransport
	stream *streamLayer
	book   *book
	log    *slog.Logger

	ready    atomic.Bool // leading, and the store holds every committed entry
	readyCh  chan struct{}
	readyMu  sync.Mutex
	done     chan struct{}
	watching sync.WaitGroup
}

// Start opens the Raft state in cfg.Dir (creating it), bootstraps the cluster on a
// first start with peers, and joins it.
func Start(ctx context.Context, cfg Config) (*Node, error) {
	log := cfg.Log
	if log == nil {
		log = slog.Default()
	}
	log = log.With("node", cfg.NodeID)
	if cfg.NodeID == "" || cfg.RaftAddress == "" {
		return nil, errors.New("cluster: a node id and a Raft address are required")
	}
	if len(cfg.Secret) == 0 {
		return nil, errors.New("cluster: the cluster's secret is required")
	}
	if err := os.MkdirAll(cfg.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("cluster: %w", err)
	}
	hl := hclog.New(&hclog.LoggerOptions{Name: "raft", Level: hclog.Info, Output: logWriter{log}, DisableTime: true})
	logs, err := raftboltdb.New(raftboltdb.Options{Path: filepath.Join(cfg.Dir, "raft.db"), BoltOptions: &bolt.Options{Timeout: 2 * time.Second}})
	if err != nil {
		return nil, fmt.Errorf("cluster: open the raft log: %w", err)
	}
	n := &Node{cfg: cfg, logs: logs, book: &book{}, log: log, readyCh: make(chan struct{}), done: make(chan struct{})}
	ok := false
	defer func() {
		if !ok {
			n.closeResources()
		}
	}()
	snaps, err := raft.NewFileSnapshotStoreWithLogger(cfg.Dir, snapshotsRetained, hl)
	if err != nil {
		return nil, fmt.Errorf("cluster: %w", err)
	}
	ln, err := net.Listen("tcp", cfg.RaftAddress)
	if err != nil {
		return nil, fmt.Errorf("cluster: listen for raft: %w", err)
	}
	n.stream, err = newStreamLayer(ln, cfg.Secret, memberInfo{ID: cfg.NodeID, Raft: cfg.advertised(), GRPC: cfg.GRPCAddress}, n.book, log)
	if err != nil {
		_ = ln.Close()
		return nil, fmt.Errorf("cluster: %w", err)
	}
	n.trans = raft.NewNetworkTransportWithConfig(&raft.NetworkTransportConfig{Stream: n.stream, MaxPool: 3, Timeout: 10 * time.Second, Logger: hl})

	conf := raft.DefaultConfig()
	conf.LocalID = raft.ServerID(cfg.NodeID)
	conf.Logger = hl
	// The store is durable and records the last entry it applied: restoring the
	// last snapshot over it on every start would only go back in time.
	conf.NoSnapshotRestoreOnStart = true
	conf.SnapshotThreshold = nonZero(cfg.SnapshotThreshold, DefaultSnapshotThreshold)
	conf.TrailingLogs = nonZero(cfg.TrailingLogs, DefaultTrailingLogs)
	conf.SnapshotInterval = nonZero(cfg.SnapshotInterval, DefaultSnapshotInterval)
	conf.HeartbeatTimeout = nonZero(cfg.HeartbeatTimeout, conf.HeartbeatTimeout)
	conf.ElectionTimeout = nonZero(cfg.ElectionTimeout, conf.ElectionTimeout)
	conf.LeaderLeaseTimeout = nonZero(cfg.LeaderLeaseTimeout, conf.LeaderLeaseTimeout)
	notify := make(chan bool, 8)
	conf.NotifyCh = notify

	existing, err := raft.HasExistingState(logs, logs, snaps)
	if err != nil {
		return nil, fmt.Errorf("cluster: %w", err)
	}
	if !existing {
		if err := checkPeers(cfg); err != nil {
			return nil, err
		}
		cur, err := cfg.Store.Current(ctx)
		if err != nil {
			return nil, err
		}
		switch {
		case cur != nil && len(cfg.Peers) != 1:
			// The others would not hold this file's versions, and the log would not
			// either: replicas would differ.
			return nil, fmt.Errorf("cluster: the data file holds config version %d: a file with data becomes a one-node cluster first (--peers naming only this node), then members are added (berryctl cluster add)", cur.GetVersion())
		}
		// The file starts a new log: indexes begin again at 1.
		if err := cfg.Store.ResetApplied(ctx); err != nil {
			return nil, err
		}
		if len(cfg.Peers) > 0 {
			var servers []raft.Server
			for _, p := range cfg.Peers {
				servers = append(servers, raft.Server{ID: raft.ServerID(p.ID), Address: raft.ServerAddress(p.Addr), Suffrage: raft.Voter})
			}
			if err := raft.BootstrapCluster(conf, logs, logs, snaps, n.trans, raft.Configuration{Servers: servers}); err != nil {
				return nil, fmt.Errorf("cluster: bootstrap: %w", err)
			}
			log.Info("cluster bootstrapped", "members", len(servers))
		} else {
			log.Info("raft state is new and --peers is empty: waiting to be added to a cluster (berryctl cluster add)")
		}
	}
	f := &fsm{st: cfg.Store, onVersion: cfg.OnVersion}
	n.raft, err = raft.NewRaft(conf, f, logs, logs, snaps, n.trans)
	if err != nil {
		return nil, fmt.Errorf("cluster: %w", err)
	}
	n.watching.Go(func() { n.watch(notify) })
	ok = true
	return n, nil
}

// advertised is the Raft address of this member the others dial.
func (cfg Config) advertised() string { return nonZero(cfg.RaftAdvertise, cfg.RaftAddress) }

// checkPeers checks the bootstrap configuration. Once the cluster exists its
// configuration is in the log, and --peers is ignored.
func checkPeers(cfg Config) error {
	if len(cfg.Peers) == 0 {
		return nil
	}
	found := false
	for _, p := range cfg.Peers {
		if p.ID == cfg.NodeID {
			found = true
			if p.Addr != cfg.advertised() {
				flag := "--raft-listen"
				if cfg.RaftAdvertise != "" {
					flag = "--raft-advertise"
				}
				return fmt.Errorf("cluster: --peers gives %s the address %s, but %s is %s", p.ID, p.Addr, flag, cfg.advertised())
			}
		}
	}
	if !found {
		return fmt.Errorf("cluster: --peers does not name this node (%s)", cfg.NodeID)
	}
	return nil
}

func nonZero[T comparable](v, def T) T {
	var zero T
	if v == zero {
		return def
	}
	return v
}

// watch follows leadership changes. On becoming leader it waits until every entry
// committed before is applied (a barrier), so that what the leader prepares is based
// on the latest state, and has the cluster's lineage set once, from its own file.
func (n *Node) watch(notify <-chan bool) {
	for {
		select {
		case <-n.done:
			return
		case leading := <-notify:
			if !leading {
				n.setReady(false)
				n.log.Info("no longer the leader")
				if n.cfg.OnLeader != nil {
					n.cfg.OnLeader(false)
				}
				continue
			}
			if err := n.raft.Barrier(30 * time.Second).Error(); err != nil {
				n.log.Warn("leader barrier failed", "err", err)
				continue
			}
			if err := n.ensureLineage(); err != nil {
				n.log.Warn("setting the cluster's lineage failed", "err", err)
				continue
			}
			if n.raft.State() != raft.Leader {
				continue
			}
			// Told before the member takes writes: what depends on leading (quota
			// credit) is set up first.
			if n.cfg.OnLeader != nil {
				n.cfg.OnLeader(true)
			}
			n.setReady(true)
			n.log.Info("leading the cluster")
		}
	}
}

func (n *Node) ensureLineage() error {
	ctx := context.Background()
	l, err := n.cfg.Store.ClusterLineage(ctx)
	if err != nil || l != "" {
		return err
	}
	if err := n.propose(&berryv1.RaftEntry{Entry: &berryv1.RaftEntry_Lineage{Lineage: n.cfg.Store.Lineage()}}, 30*time.Second); err != nil {
		return err
	}
	return n.compact()
}

// compact takes a snapshot and drops the whole log before it. A log that starts
// with the lineage entry is new for this file, and the file may hold what no entry
// does (a one-node file upgraded in place, a restored backup): members added later
// must get the state from a snapshot, not by replaying a log that lacks it.
func (n *Node) compact() error {
	rc := n.raft.ReloadableConfig()
	trailing := rc.TrailingLogs
	rc.TrailingLogs = 0
	if err := n.raft.ReloadConfig(rc); err != nil {
		return err
	}
	err := n.raft.Snapshot().Error()
	rc.TrailingLogs = trailing
	if rerr := n.raft.ReloadConfig(rc); err == nil {
		err = rerr
	}
	if err != nil {
		return fmt.Errorf("snapshot of the new log: %w", err)
	}
	return nil
}

func (n *Node) setReady(v bool) {
	n.readyMu.Lock()
	defer n.readyMu.Unlock()
	if n.ready.Load() == v {
		return
	}
	n.ready.Store(v)
	if v {
		close(n.readyCh)
	} else {
		n.readyCh = make(chan struct{})
	}
}

// Leading reports whether this member leads and is ready to take changes.
func (n *Node) Leading() bool { return n.ready.Load() && n.raft.State() == raft.Leader }

// Apply proposes e and returns once a majority holds it and this member applied it,
// with the error applying it gave (e.g. store.ErrStale). On a member that does not
// lead it returns ErrNotLeader at once.
func (n *Node) Apply(ctx context.Context, e *berryv1.RaftEntry) error {
	if n.raft.State() != raft.Leader {
		return ErrNotLeader
	}
	n.readyMu.Lock()
	ready := n.readyCh
	n.readyMu.Unlock()
	select {
	case <-ready:
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(10 * time.Second):
		return ErrNotLeader
	}
	timeout := 10 * time.Second
	if d, ok := ctx.Deadline(); ok {
		timeout = max(time.Until(d), time.Millisecond)
	}
	return n.propose(e, timeout)
}

func (n *Node) propose(e *berryv1.RaftEntry, timeout time.Duration) error {
	data, err := proto.Marshal(e)
	if err != nil {
		return err
	}
	f := n.raft.Apply(data, timeout)
	if err := f.Error(); err != nil {
		switch {
		case errors.Is(err, raft.ErrNotLeader):
			return ErrNotLeader
		case errors.Is(err, raft.ErrLeadershipLost):
			return ErrLeadershipLost
		}
		return fmt.Errorf("replicate: %w", err)
	}
	if r, ok := f.Response().(applyResult); ok {
		return r.err
	}
	return nil
}

// Leader returns the leader's id and gRPC address as this member knows them; empty
// when there is no leader (or its address is not known yet).
func (n *Node) Leader() (id, grpcAddress string) {
	_, lid := n.raft.LeaderWithID()
	if lid == "" {
		return "", ""
	}
	if string(lid) == n.cfg.NodeID {
		return n.cfg.NodeID, n.cfg.GRPCAddress
	}
	return string(lid), n.book.get(string(lid)).GRPC
}

// ID returns this member's id.
func (n *Node) ID() string { return n.cfg.NodeID }

// Removed reports whether this member has been removed from the cluster: the latest
// configuration it holds names other members and not it. A member waiting to be
// added holds none.
func (n *Node) Removed() bool {
	f := n.raft.GetConfiguration()
	if f.Error() != nil {
		return false
	}
	servers := f.Configuration().Servers
	for _, s := range servers {
		if string(s.ID) == n.cfg.NodeID {
			return false
		}
	}
	return len(servers) > 0
}

// Members returns the gRPC addresses of the other members this one knows.
func (n *Node) Members() (map[string]string, error) {
	f := n.raft.GetConfiguration()
	if err := f.Error(); err != nil {
		return nil, err
	}
	out := map[string]string{}
	for _, s := range f.Configuration().Servers {
		if string(s.ID) == n.cfg.NodeID {
			continue
		}
		out[string(s.ID)] = n.book.get(string(s.ID)).GRPC
	}
	return out, nil
}

// Status describes the cluster as this member sees it.
func (n *Node) Status(ctx context.Context) (*berryv1.ClusterStatusResponse, error) {
	f := n.raft.GetConfiguration()
	if err := f.Error(); err != nil {
		return nil, err
	}
	lid, laddr := n.Leader()
	st := n.raft.Stats()
	out := &berryv1.ClusterStatusResponse{
		NodeId: n.cfg.NodeID, State: n.raft.State().String(), LeaderId: lid, LeaderGrpcAddress: laddr,
		Term: parseUint(st["term"]), CommitIndex: n.raft.CommitIndex(), AppliedIndex: n.raft.AppliedIndex(),
		LastLogIndex: n.raft.LastIndex(), LastSnapshotIndex: parseUint(st["last_snapshot_index"]),
	}
	for _, s := range f.Configuration().Servers {
		m := &berryv1.ClusterMember{Id: string(s.ID), RaftAddress: string(s.Address), Voter: s.Suffrage == raft.Voter, Leader: string(s.ID) == lid}
		if string(s.ID) == n.cfg.NodeID {
			m.GrpcAddress = n.cfg.GRPCAddress
		} else {
			m.GrpcAddress = n.book.get(string(s.ID)).GRPC
		}
		out.Members = append(out.Members, m)
	}
	cur, err := n.cfg.Store.Current(ctx)
	if err != nil {
		return nil, err
	}
	out.ConfigVersion = cur.GetVersion()
	return out, nil
}

func parseUint(s string) uint64 {
	v, _ := strconv.ParseUint(s, 10, 64)
	return v
}

// AddMember adds a voter; only the leader can.
func (n *Node) AddMember(ctx context.Context, id, raftAddress string) error {
	if !n.Leading() {
		return ErrNotLeader
	}
	if id == "" || raftAddress == "" {
		return errors.New("a member needs an id and a Raft address")
	}
	if _, _, err := net.SplitHostPort(raftAddress); err != nil {
		return fmt.Errorf("raft address %q: %w", raftAddress, err)
	}
	return mapRaftErr(n.raft.AddVoter(raft.ServerID(id), raft.ServerAddress(raftAddress), 0, timeoutOf(ctx)).Error())
}

// RemoveMember removes a member; only the leader can.
func (n *Node) RemoveMember(ctx context.Context, id string) error {
	if !n.Leading() {
		return ErrNotLeader
	}
	f := n.raft.GetConfiguration()
	if err := f.Error(); err != nil {
		return err
	}
	known := false
	for _, s := range f.Configuration().Servers {
		known = known || string(s.ID) == id
	}
	if !known {
		return fmt.Errorf("%q is not a member", id)
	}
	return mapRaftErr(n.raft.RemoveServer(raft.ServerID(id), 0, timeoutOf(ctx)).Error())
}

func mapRaftErr(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, raft.ErrNotLeader):
		return ErrNotLeader
	case errors.Is(err, raft.ErrLeadershipLost):
		return ErrLeadershipLost
	}
	return err
}

func timeoutOf(ctx context.Context) time.Duration {
	if d, ok := ctx.Deadline(); ok {
		return max(time.Until(d), time.Millisecond)
	}
	return 30 * time.Second
}

// Shutdown leaves the cluster's traffic: a leader first hands its leadership to
// another member (so writes resume without waiting for an election timeout), then
// Raft stops and its files are closed.
func (n *Node) Shutdown() error {
	if n.raft.State() == raft.Leader && n.hasOtherVoters() {
		if err := n.raft.LeadershipTransfer().Error(); err != nil {
			n.log.Warn("leadership transfer before shutdown failed", "err", err)
		}
	}
	err := n.raft.Shutdown().Error()
	close(n.done)
	n.watching.Wait()
	n.closeResources()
	return err
}

func (n *Node) hasOtherVoters() bool {
	f := n.raft.GetConfiguration()
	if f.Error() != nil {
		return false
	}
	for _, s := range f.Configuration().Servers {
		if string(s.ID) != n.cfg.NodeID && s.Suffrage == raft.Voter {
			return true
		}
	}
	return false
}

func (n *Node) closeResources() {
	if n.trans != nil {
		_ = n.trans.Close()
	} else if n.stream != nil {
		_ = n.stream.Close()
	}
	if n.logs != nil {
		_ = n.logs.Close()
	}
}

// logWriter turns Raft's log lines into records of the control plane's log.
type logWriter struct{ log *slog.Logger }

func (w logWriter) Write(p []byte) (int, error) {
	line := strings.TrimSpace(string(p))
	level := slog.LevelInfo
	switch {
	case strings.HasPrefix(line, "[ERROR]"):
		level = slog.LevelError
	case strings.HasPrefix(line, "[WARN]"):
		level = slog.LevelWarn
	case strings.HasPrefix(line, "[DEBUG]"), strings.HasPrefix(line, "[TRACE]"):
		level = slog.LevelDebug
	}
	// hclog writes "[LEVEL] raft: message": the level becomes the record's.
	if i := strings.IndexByte(line, ']'); strings.HasPrefix(line, "[") && i > 0 {
		line = strings.TrimSpace(line[i+1:])
	}
	w.log.Log(context.Background(), level, line)
	return len(p), nil
}

var _ io.Writer = logWriter{}
