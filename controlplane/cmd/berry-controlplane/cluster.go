package main

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/berry-gateway/berry/controlplane/internal/auth"
	"github.com/berry-gateway/berry/controlplane/internal/cluster"
	"github.com/berry-gateway/berry/controlplane/internal/server"
	"github.com/berry-gateway/berry/controlplane/internal/store"
	"github.com/berry-gateway/berry/pkg/grpccreds"
)

// clusterFlags are the flags of a replicated control plane. Without --peers and
// --raft-listen the control plane runs as one node, as it always has.
type clusterFlags struct {
	nodeID, raftListen, raftAdvertise, peers, secretFile, raftDir, advertise *string
	secret                                                                   []byte
	peerList                                                                 []cluster.Peer
}

func registerClusterFlags(fs *flag.FlagSet) *clusterFlags {
	return &clusterFlags{
		nodeID:        fs.String("node-id", "", "this member's id in a cluster (e.g. n1); cluster mode only"),
		raftListen:    fs.String("raft-listen", "", "address of this member's Raft transport (e.g. 127.0.0.1:7001); setting it (or --peers) runs the control plane as a member of a cluster"),
		raftAdvertise: fs.String("raft-advertise", "", "the Raft address the other members dial, and this member's in --peers, when it is not --raft-listen (e.g. --raft-listen :7001 --raft-advertise n1.berry-peers:7001); default: --raft-listen"),
		peers:         fs.String("peers", "", "the cluster to bootstrap on first start, this member included: n1=host:7001,n2=host:7002,n3=host:7003; empty with --raft-listen: wait to be added (berryctl cluster add)"),
		secretFile:    fs.String("raft-secret-file", "", "file holding the cluster's shared secret, which authenticates and encrypts Raft traffic (required unless --peers names this node only)"),
		raftDir:       fs.String("raft-dir", "", "directory of the Raft log and snapshots (default: the --data path with .raft appended)"),
		advertise:     fs.String("grpc-advertise", "", "the gRPC address the other members reach this one at, to forward writes (default: --grpc-listen)"),
	}
}

// enabled reports whether the control plane runs as a cluster member.
func (c *clusterFlags) enabled() bool { return *c.raftListen != "" || *c.peers != "" }

// load checks the flags and reads the secret.
func (c *clusterFlags) load(log *slog.Logger) error {
	if !c.enabled() {
		for _, f := range []*string{c.nodeID, c.secretFile, c.raftDir, c.advertise, c.raftAdvertise} {
			if *f != "" {
				return errors.New("--node-id, --raft-secret-file, --raft-dir, --raft-advertise and --grpc-advertise need --raft-listen (and --peers to bootstrap a cluster)")
			}
		}
		return nil
	}
	if *c.nodeID == "" || *c.raftListen == "" {
		return errors.New("a cluster member needs --node-id and --raft-listen")
	}
	var err error
	if c.peerList, err = cluster.ParsePeers(*c.peers); err != nil {
		return fmt.Errorf("--peers: %w", err)
	}
	if *c.secretFile == "" {
		if len(c.peerList) != 1 {
			return errors.New("--raft-secret-file is required: the cluster's members authenticate each other with it")
		}
		// A one-node cluster talks to nobody; members can be added once it has one.
		c.secret = make([]byte, 32)
		_, _ = rand.Read(c.secret)
		log.Warn("no --raft-secret-file: this one-node cluster cannot take members until it is restarted with one")
		return nil
	}
	raw, err := os.ReadFile(*c.secretFile)
	if err != nil {
		return fmt.Errorf("--raft-secret-file: %w", err)
	}
	c.secret = []byte(strings.TrimSpace(string(raw)))
	if len(c.secret) < 16 {
		return fmt.Errorf("--raft-secret-file %s: the secret must be at least 16 bytes (e.g. openssl rand -hex 32)", *c.secretFile)
	}
	return nil
}

// credentials returns creds with the credential members present to each other's
// gRPC API: a token derived from the secret, so it needs no flag of its own. creds
// are returned as they are on one node, and when none has a token (the control plane
// checks no tokens: anyone may call it).
func (c *clusterFlags) credentials(creds []auth.Credential) []auth.Credential {
	if !c.enabled() || !slices.ContainsFunc(creds, func(cr auth.Credential) bool { return cr.Token != "" }) {
		return creds
	}
	return append(creds, auth.Credential{Name: "cluster", Role: auth.RoleAdmin, Token: c.token()})
}

func (c *clusterFlags) token() string {
	m := hmac.New(sha256.New, c.secret)
	m.Write([]byte("berry cluster member grpc token v1"))
	return "berry-cluster-" + hex.EncodeToString(m.Sum(nil))
}

// start joins the cluster: the store's changes go through the Raft log from now on.
func (c *clusterFlags) start(ctx context.Context, log *slog.Logger, st *store.Store, srv *server.Server, dataPath, grpcListen string, tokensOn bool, tlsc grpccreds.Client) (*cluster.Node, error) {
	dir := *c.raftDir
	if dir == "" {
		dir = dataPath + ".raft"
	}
	adv := *c.advertise
	if adv == "" {
		adv = grpcListen
	}
	node, err := cluster.Start(ctx, cluster.Config{
		NodeID: *c.nodeID, RaftAddress: *c.raftListen, RaftAdvertise: *c.raftAdvertise, GRPCAddress: adv, Peers: c.peerList,
		Secret: c.secret, Dir: dir, Store: st, Log: log,
		OnVersion: srv.ApplyVersion, OnLeader: srv.LeaderChanged,
	})
	if err != nil {
		return nil, err
	}
	dial, err := tlsc.DialOptions()
	if err != nil {
		_ = node.Shutdown()
		return nil, err
	}
	opts := server.ClusterOptions{PeerDial: dial}
	if tokensOn {
		opts.Token = c.token()
	}
	srv.AttachCluster(node, opts)
	log.Info("cluster member started", "node", *c.nodeID, "raft", *c.raftListen, "raft_advertise", *c.raftAdvertise, "grpc_advertise", adv, "raft_dir", dir)
	return node, nil
}

// bootstrapLeader imports the bootstrap file on a cluster: only the leader can write,
// so each member that has the flag waits (in the background) until a leader is
// elected, and imports it if it leads; the import is a no-op once the store holds a
// version, so several members given the same file import it once.
func bootstrapLeader(ctx context.Context, log *slog.Logger, node *cluster.Node, srv *server.Server, doc []byte, source string) {
	go func() {
		deadline := time.Now().Add(2 * time.Minute)
		for time.Now().Before(deadline) && ctx.Err() == nil {
			id, _ := node.Leader()
			if id != "" && id != node.ID() {
				log.Info("bootstrap file left to the leader", "leader", id, "source", source)
				return
			}
			if node.Leading() {
				if err := srv.Bootstrap(ctx, doc, source); err != nil {
					log.Error("bootstrap import", "err", err)
				}
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
	}()
}
