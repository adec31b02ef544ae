package server

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/berry-gateway/berry/controlplane/internal/auth"
	"github.com/berry-gateway/berry/controlplane/internal/cluster"
	"github.com/berry-gateway/berry/controlplane/internal/quota"
	"github.com/berry-gateway/berry/controlplane/internal/store"
	berryv1 "github.com/berry-gateway/berry/pkg/api/berry/v1"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
)

const memberTok = "member-token"

// startMembers runs n control planes as one Raft cluster in this process, each with
// its own store, Raft transport and gRPC server on loopback.
func startMembers(t *testing.T, n int, opts Options) ([]*harness, map[*harness]func()) {
	t.Helper()
	type member struct {
		lis      net.Listener
		raftAddr string
	}
	ms := make([]member, n)
	var peers []cluster.Peer
	for i := range ms {
		lis, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		rl, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ms[i] = member{lis: lis, raftAddr: rl.Addr().String()}
		rl.Close()
		peers = append(peers, cluster.Peer{ID: fmt.Sprint("n", i+1), Addr: ms[i].raftAddr})
	}
	var hs []*harness
	stops := map[*harness]func(){}
	for i, m := range ms {
		dir := t.TempDir()
		path := filepath.Join(dir, "berry.db")
		st, err := store.Open(path, store.Options{})
		if err != nil {
			t.Fatal(err)
		}
		logs := &syncBuffer{}
		log := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
		o := opts
		o.Log = log
		srv := New(st, o)
		node, err := cluster.Start(context.Background(), cluster.Config{
			NodeID: peers[i].ID, RaftAddress: m.raftAddr, GRPCAddress: m.lis.Addr().String(), Peers: peers,
			Secret: []byte("a cluster secret of some length"), Dir: filepath.Join(dir, "raft"), Store: st, Log: log,
			OnVersion: srv.ApplyVersion, OnLeader: srv.LeaderChanged,
			HeartbeatTimeout: 400 * time.Millisecond, ElectionTimeout: 400 * time.Millisecond, LeaderLeaseTimeout: 200 * time.Millisecond,
		})
		if err != nil {
			t.Fatal(err)
		}
		srv.AttachCluster(node, ClusterOptions{Token: memberTok})
		if err := srv.Load(context.Background()); err != nil {
			t.Fatal(err)
		}
		srv.Start(context.Background())
		policy := auth.NewPolicy([]auth.Credential{
			{Name: "admin", Role: auth.RoleAdmin, Token: adminTok},
			{Name: "read", Role: auth.RoleRead, Token: readTok},
			{Name: "edge", Role: auth.RoleEdge, Token: edgeTok},
			{Name: "cluster", Role: auth.RoleAdmin, Token: memberTok},
		}, ReadMethods)
		gs := srv.NewGRPCServer(policy)
		go func() { _ = gs.Serve(m.lis) }()
		var once sync.Once
		stop := func() {
			once.Do(func() {
				srv.Shutdown()
				gs.Stop()
				_ = node.Shutdown()
				st.Close()
			})
		}
		t.Cleanup(stop)
		h := &harness{srv: srv, gs: gs, addr: m.lis.Addr().String(), logs: logs, path: path}
		hs = append(hs, h)
		stops[h] = stop
	}
	return hs, stops
}

// leading returns the harness whose member leads.
func leading(t *testing.T, hs []*harness) (*harness, []*harness) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		for i, h := range hs {
			if h.srv.cluster.replica.Leading() {
				var rest []*harness
				rest = append(rest, hs[:i]...)
				return h, append(rest, hs[i+1:]...)
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatal("no leader")
	return nil, nil
}

// TestClusterForwarding: a write sent to a follower is made by the leader with the
// caller's identity (its author) and role (a read token may not write through a
// follower either); every member then serves it; reads stay local; the leases'
// view (GetQuotas) is the leader's; fleet status lists the edges of every member.
func TestClusterForwarding(t *testing.T) {
	hs, _ := startMembers(t, 3, Options{})
	leader, followers := leading(t, hs)
	f := followers[0]

	_, err := f.admin(t, readTok).UpdateSettings(ctxT(t), &berryv1.UpdateSettingsRequest{Settings: &berryv1.Settings{MaxRetries: 2}})
	wantCode(t, "write with the read token on a follower", err, codes.PermissionDenied)

	r, err := f.admin(t, adminTok).ApplyConfig(ctxT(t), &berryv1.ApplyConfigRequest{
		Source: &berryv1.ApplyConfigRequest_Toml{Toml: seed}, Options: &berryv1.WriteOptions{Message: "via a follower"}})
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range hs {
		waitFor(t, "version on every member", func() bool {
			v, err := h.admin(t, readTok).GetCurrentVersion(ctxT(t), &berryv1.GetCurrentVersionRequest{})
			return err == nil && v.GetVersion() == r.GetVersion()
		})
		v, err := h.admin(t, readTok).GetCurrentVersion(ctxT(t), &berryv1.GetCurrentVersionRequest{})
		if err != nil {
			t.Fatal(err)
		}
		if v.GetAuthor() != "admin" || v.GetMessage() != "via a follower" {
			t.Fatalf("%s: version %d by %q (%q), want the caller admin", h.addr, v.GetVersion(), v.GetAuthor(), v.GetMessage())
		}
	}
	if !strings.Contains(leader.logs.String(), "config changed") || strings.Contains(f.logs.String(), "config changed") {
		t.Fatal("the write was not made by the leader")
	}

	// Stale writes are refused by the leader for the follower's caller too.
	_, err = f.admin(t, adminTok).UpdateSettings(ctxT(t), &berryv1.UpdateSettingsRequest{
		Settings: &berryv1.Settings{MaxRetries: 2}, Options: &berryv1.WriteOptions{ExpectedVersion: 99}})
	wantCode(t, "stale write via a follower", err, codes.FailedPrecondition)

	if _, err := f.admin(t, readTok).GetQuotas(ctxT(t), &berryv1.GetQuotasRequest{}); err != nil {
		t.Fatalf("GetQuotas on a follower: %v", err)
	}
	st, err := berryv1.NewClusterServiceClient(f.conn(t, readTok)).ClusterStatus(ctxT(t), &berryv1.ClusterStatusRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if st.GetState() != "Follower" || st.GetLeaderGrpcAddress() != leader.addr || len(st.GetMembers()) != 3 {
		t.Fatalf("status from a follower: %v", st)
	}
	for _, m := range st.GetMembers() {
		if m.GetGrpcAddress() == "" {
			t.Fatalf("status from a follower lacks %s's gRPC address", m.GetId())
		}
	}

	// One edge on each member: every member's fleet status lists the three.
	for i, h := range hs {
		stream, err := berryv1.NewEdgeServiceClient(h.conn(t, edgeTok)).Sync(ctxT(t))
		if err != nil {
			t.Fatal(err)
		}
		if err := stream.Send(&berryv1.SyncRequest{Kind: &berryv1.SyncRequest_Hello{Hello: &berryv1.Hello{EdgeId: fmt.Sprint("edge-", i)}}}); err != nil {
			t.Fatal(err)
		}
		if _, err := stream.Header(); err != nil {
			t.Fatal(err)
		}
	}
	for _, h := range hs {
		waitFor(t, "every edge in fleet status", func() bool {
			fs, err := h.admin(t, readTok).FleetStatus(ctxT(t), &berryv1.FleetStatusRequest{})
			return err == nil && len(fs.GetEdges()) == 3
		})
	}
}

// TestClusterOneNode: without a cluster the cluster RPCs say so.
func TestClusterOneNode(t *testing.T) {
	h := start(t)
	_, err := berryv1.NewClusterServiceClient(h.conn(t, adminTok)).ClusterStatus(ctxT(t), &berryv1.ClusterStatusRequest{})
	if status.Code(err) != codes.FailedPrecondition || !strings.Contains(err.Error(), "one node") {
		t.Fatalf("ClusterStatus on one node: %v", err)
	}
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

// TestClusterQuotaLeaderChange: quota credit is leased by the leader only, and its
// counters go through the log. When the leader is lost, the new one takes the fleet's
// consumption from its own copy and grants nothing (Hold) until the edge the old
// leader granted credit to has reported: credit is never granted twice. An edge on a
// follower is given no credit at all.
func TestClusterQuotaLeaderChange(t *testing.T) {
	hs, stops := startMembers(t, 3, fastQuotas)
	old, followers := leading(t, hs)
	old.apply(t, quotaSeed)
	w := quota.Window(rpd, time.Now())

	e1, _ := openSync(t, old, &berryv1.Hello{EdgeId: "e1"})
	sendBatch(t, e1, &berryv1.ObservationBatch{Seq: 1, Instance: "e1",
		Quota: []*berryv1.QuotaReport{{Key: "alice", Dimension: rpd, Window: w, Consumed: 10, Demand: 10}}})
	g := nextGrants(t, e1, func(g *berryv1.QuotaGrants) bool { return len(g.GetGrants()) > 0 })
	if c := g.GetGrants()[0].GetCredit(); c <= 0 || c > 90 {
		t.Fatalf("credit %d with 10 of 100 used", c)
	}
	// The follower's copy of the counters and of the edges seen today.
	for _, f := range followers {
		waitFor(t, "the counters replicated", func() bool {
			cs, err := f.srv.quota.store.QuotaCounters(ctxT(t), map[berryv1.QuotaDimension]int64{rpd: w})
			es, eerr := f.srv.quota.store.QuotaEdges(ctxT(t), 0)
			return err == nil && eerr == nil && len(cs) == 1 && cs[0].Consumed == 10 && len(es) == 1
		})
	}
	// An edge on a follower: the leader computes its credit, the follower relays it.
	e3, _ := openSync(t, followers[0], &berryv1.Hello{EdgeId: "e3"})
	sendBatch(t, e3, &berryv1.ObservationBatch{Seq: 1, Instance: "e3",
		Quota: []*berryv1.QuotaReport{{Key: "alice", Dimension: rpd, Window: w, Demand: 10}}})
	oldEngine, _ := old.srv.quota.eng()
	g = nextGrants(t, e3, func(g *berryv1.QuotaGrants) bool { return len(g.GetGrants()) > 0 })
	if g.GetInstance() != oldEngine.Instance() || g.GetEdges() != 2 {
		t.Fatalf("e3's grants %v: want the leader's (instance %s) counting both edges", g, oldEngine.Instance())
	}

	stops[old]()
	next, _ := leading(t, followers)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("new leader's log:\n%s", next.logs.String())
		}
	})
	e2, _ := openSync(t, next, &berryv1.Hello{EdgeId: "e2"})
	sendBatch(t, e2, &berryv1.ObservationBatch{Seq: 1, Instance: "e2",
		Quota: []*berryv1.QuotaReport{{Key: "alice", Dimension: rpd, Window: w, Demand: 10}}})
	for range 3 {
		g := nextGrants(t, e2, func(*berryv1.QuotaGrants) bool { return true })
		if !g.GetHold() || len(g.GetGrants()) != 0 {
			t.Fatalf("grants of the new leader while e1 has not reported: %v", g)
		}
	}
	waitQuota(t, next, "alice", func(u *berryv1.QuotaUse) bool { return u.GetUsed() == 10 })
	e1, _ = openSync(t, next, &berryv1.Hello{EdgeId: "e1"})
	sendBatch(t, e1, &berryv1.ObservationBatch{Seq: 1, Instance: "e1",
		Quota: []*berryv1.QuotaReport{{Key: "alice", Dimension: rpd, Window: w, Consumed: 5, Demand: 10}}})
	// e3, which the old leader saw, reports again (through its member, whether it
	// leads now or relays): the new leader stops holding once every edge reported.
	sendBatch(t, e3, &berryv1.ObservationBatch{Seq: 2, Instance: "e3",
		Quota: []*berryv1.QuotaReport{{Key: "alice", Dimension: rpd, Window: w, Demand: 10}}})
	nextGrants(t, e2, func(g *berryv1.QuotaGrants) bool { return !g.GetHold() })
	// Edges report every second; e2's demand now reaches the new engine.
	sendBatch(t, e2, &berryv1.ObservationBatch{Seq: 2, Instance: "e2",
		Quota: []*berryv1.QuotaReport{{Key: "alice", Dimension: rpd, Window: w, Demand: 10}}})
	g = nextGrants(t, e2, func(g *berryv1.QuotaGrants) bool { return !g.GetHold() && len(g.GetGrants()) > 0 })
	if c := g.GetGrants()[0].GetCredit(); c <= 0 || c > 85 {
		t.Fatalf("credit %d with 15 of 100 used", c)
	}
	// e3 gets the new leader's credit too, whether its member leads or relays.
	sendBatch(t, e3, &berryv1.ObservationBatch{Seq: 3, Instance: "e3",
		Quota: []*berryv1.QuotaReport{{Key: "alice", Dimension: rpd, Window: w, Demand: 10}}})
	newEngine, _ := next.srv.quota.eng()
	nextGrants(t, e3, func(g *berryv1.QuotaGrants) bool {
		return g.GetInstance() == newEngine.Instance() && !g.GetHold() && len(g.GetGrants()) > 0
	})
}

// nextScores reads the stream until a FleetScores that ok accepts.
func nextScores(t *testing.T, s berryv1.EdgeService_SyncClient, ok func(*berryv1.FleetScores) bool) *berryv1.FleetScores {
	t.Helper()
	for {
		msg, err := s.Recv()
		if err != nil {
			t.Fatal(err)
		}
		if sc := msg.GetScores(); sc != nil && ok(sc) {
			return sc
		}
	}
}

// TestClusterRelayScores: the leader merges the observations of the edges of every
// member, followers' relayed, and the same scores and probe owners reach every edge;
// when the leader is lost, the new one's scores reach the edges left.
func TestClusterRelayScores(t *testing.T) {
	opts := fastQuotas
	opts.ScoreInterval = 20 * time.Millisecond
	hs, stops := startMembers(t, 3, opts)
	leader, followers := leading(t, hs)
	leader.apply(t, seed)
	members := []*harness{leader, followers[0], followers[1]}
	streams := make([]berryv1.EdgeService_SyncClient, 3)
	ids := []string{"e0", "e1", "e2"}
	report := func(i int, seq uint64) {
		sendBatch(t, streams[i], &berryv1.ObservationBatch{Seq: seq, Instance: ids[i], Backends: []*berryv1.BackendObservation{{
			Provider: "openai", UpstreamModel: "gpt-4o", LatencySeconds: 0.1 * float64(i+1), Samples: 10, Requests: 10}}})
	}
	for i, h := range members {
		streams[i], _ = openSync(t, h, &berryv1.Hello{EdgeId: ids[i]})
		report(i, 1)
	}
	fleetWide := func(instance string, edges uint32) func(*berryv1.FleetScores) bool {
		return func(sc *berryv1.FleetScores) bool {
			for _, b := range sc.GetBackends() {
				if b.GetProvider() == "openai" && b.GetUpstreamModel() == "gpt-4o" {
					return sc.GetInstance() == instance && b.GetEdges() == edges
				}
			}
			return false
		}
	}
	var owner string
	for i := range streams {
		sc := nextScores(t, streams[i], fleetWide(leader.srv.scoring.instance, 3))
		o := sc.GetProbeOwners()["openai"]
		if i == 0 {
			owner = o
		}
		if o != owner || !slices.Contains(ids, o) {
			t.Fatalf("%s's probe owner of openai is %q, e0's %q: want one edge of the fleet for all", ids[i], o, owner)
		}
	}

	stops[leader]()
	killed := time.Now()
	next, _ := leading(t, followers)
	// The survivors' edges report on (every second in a real edge).
	for i := 1; i < 3; i++ {
		report(i, 2)
	}
	for i := 1; i < 3; i++ {
		sc := nextScores(t, streams[i], fleetWide(next.srv.scoring.instance, 2))
		if o := sc.GetProbeOwners()["openai"]; o != "e1" && o != "e2" {
			t.Fatalf("after the leader change, %s's probe owner of openai is %q", ids[i], o)
		}
		t.Logf("%s got the new leader's scores %v after the old leader stopped", ids[i], time.Since(killed).Round(time.Millisecond))
	}
}

// TestClusterRelayQuota: edges on every member share one key's limit: the leader
// grants each of them credit, followers' through the relay, counting the whole
// fleet's edges, and never more in all than the limit. Each asks for little enough
// that the first to report cannot take it all.
func TestClusterRelayQuota(t *testing.T) {
	hs, _ := startMembers(t, 3, fastQuotas)
	leader, followers := leading(t, hs)
	leader.apply(t, quotaSeed)
	w := quota.Window(rpd, time.Now())
	// The leader's engine: the one it started when it gained the leadership.
	waitFor(t, "the leader's engine", func() bool {
		_, gen := leader.srv.quota.eng()
		return gen > 0 && leader.srv.quota.restored.Load()
	})
	engine, _ := leader.srv.quota.eng()
	members := []*harness{leader, followers[0], followers[1]}
	type result struct {
		credit int64
		err    error
	}
	results := make(chan result, len(members))
	streams := make([]berryv1.EdgeService_SyncClient, len(members))
	cancels := make([]func(), len(members))
	for i, h := range members {
		streams[i], cancels[i] = openSync(t, h, &berryv1.Hello{EdgeId: fmt.Sprint("e", i)})
	}
	waitFor(t, "the leader's engine counts every member's edge", func() bool { return engine.Connected() == 3 })
	for i := range members {
		id, s, cancel := fmt.Sprint("e", i), streams[i], cancels[i]
		sendBatch(t, s, &berryv1.ObservationBatch{Seq: 1, Instance: id,
			Quota: []*berryv1.QuotaReport{{Key: "alice", Dimension: rpd, Window: w, Demand: 10}}})
		go func() {
			var credit int64
			deadline := time.Now().Add(2 * time.Second)
			for time.Now().Before(deadline) {
				msg, err := s.Recv()
				if err != nil {
					results <- result{err: fmt.Errorf("%s: %w", id, err)}
					return
				}
				g := msg.GetGrants()
				if g == nil {
					continue
				}
				if g.GetInstance() != engine.Instance() {
					results <- result{err: fmt.Errorf("%s got grants of instance %s, not the leader's %s", id, g.GetInstance(), engine.Instance())}
					return
				}
				if len(g.GetGrants()) > 0 && g.GetEdges() != 3 {
					results <- result{err: fmt.Errorf("%s's grants count %d edges in the fleet, want 3", id, g.GetEdges())}
					return
				}
				for _, gr := range g.GetGrants() {
					credit += gr.GetCredit()
				}
			}
			cancel()
			results <- result{credit: credit}
		}()
	}
	var total int64
	for range members {
		r := <-results
		if r.err != nil {
			t.Fatal(r.err)
		}
		if r.credit <= 0 {
			t.Fatalf("an edge got no credit (each asked for 10 of 100)")
		}
		total += r.credit
	}
	if total > 100 {
		t.Fatalf("the fleet was granted %d of a limit of 100", total)
	}
	t.Logf("credit granted over three members' edges: %d of 100", total)
}

// TestClusterRemovedMemberStopsServing: a member removed from the cluster applies
// nothing any more; it ends its edges' streams so that they move to a member that
// does, refuses new ones and reports NOT_SERVING.
func TestClusterRemovedMemberStopsServing(t *testing.T) {
	hs, _ := startMembers(t, 3, Options{})
	leader, followers := leading(t, hs)
	leader.apply(t, seed)
	gone := followers[0]
	e, _ := openSync(t, gone, &berryv1.Hello{EdgeId: "e1"})
	if _, err := berryv1.NewClusterServiceClient(leader.conn(t, adminTok)).RemoveMember(ctxT(t),
		&berryv1.RemoveMemberRequest{Id: gone.srv.cluster.replica.ID()}); err != nil {
		t.Fatal(err)
	}
	for {
		_, err := e.Recv()
		if err == nil {
			continue
		}
		if status.Code(err) != codes.Unavailable || !strings.Contains(err.Error(), "removed") {
			t.Fatalf("the removed member ended its edge's stream with %v, want Unavailable saying it was removed", err)
		}
		break
	}
	s, err := berryv1.NewEdgeServiceClient(gone.conn(t, edgeTok)).Sync(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Send(&berryv1.SyncRequest{Kind: &berryv1.SyncRequest_Hello{Hello: &berryv1.Hello{EdgeId: "e2"}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Recv(); status.Code(err) != codes.Unavailable {
		t.Fatalf("a new stream to the removed member: %v, want Unavailable", err)
	}
	r, err := healthpb.NewHealthClient(gone.conn(t, edgeTok)).Check(ctxT(t), &healthpb.HealthCheckRequest{})
	if err != nil || r.GetStatus() != healthpb.HealthCheckResponse_NOT_SERVING {
		t.Fatalf("health of the removed member: %v %v, want NOT_SERVING", r, err)
	}
	// The others serve on.
	openSync(t, followers[1], &berryv1.Hello{EdgeId: "e1"})
}
