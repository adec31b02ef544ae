package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/berry-gateway/berry/controlplane/internal/cache"
	"github.com/berry-gateway/berry/controlplane/internal/cluster"
	"github.com/berry-gateway/berry/controlplane/internal/store"
	berryv1 "github.com/berry-gateway/berry/pkg/api/berry/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
)

// Replica is the replicated log a clustered control plane writes through
// (cluster.Node): every change of the store is proposed to it on the leader and
// applied on every member.
type Replica interface {
	ID() string
	// Leading reports whether this member leads and may propose.
	Leading() bool
	// Removed reports whether this member was removed from the cluster.
	Removed() bool
	// Leader returns the leader's id and gRPC address ("" when unknown).
	Leader() (id, grpcAddress string)
	// Members returns the other members' gRPC addresses by id ("" when unknown).
	Members() (map[string]string, error)
	Apply(ctx context.Context, e *berryv1.RaftEntry) error
	Status(ctx context.Context) (*berryv1.ClusterStatusResponse, error)
	AddMember(ctx context.Context, id, raftAddress string) error
	RemoveMember(ctx context.Context, id string) error
}

// ClusterOptions wires a Server into a cluster (AttachCluster).
type ClusterOptions struct {
	// PeerDial is how this member dials the others' gRPC API (transport
	// credentials); default plaintext.
	PeerDial []grpc.DialOption
	// Token is the credential members present to each other (derived from the
	// cluster's secret); empty when the control plane checks no tokens.
	Token string
}

// Metadata of calls between members.
const (
	// mdForwardedBy marks a call a follower forwarded to the leader: the leader does
	// not forward it again (a leader that just lost its leadership refuses instead).
	mdForwardedBy = "berry-forwarded-by"
	// mdLocal asks a member for its own edges only (FleetStatus gathers them).
	mdLocal = "berry-local"
)

// clusterState is a Server's part in a cluster; nil in one-node mode.
type clusterState struct {
	replica Replica
	opts    ClusterOptions
	mu      sync.Mutex
	conns   map[string]*grpc.ClientConn // by gRPC address
}

// AttachCluster makes s a member of a cluster: its writes go through r, which must
// call ApplyVersion with every version it applies and LeaderChanged when this member
// gains or loses the leadership. Call it before Load and Start.
func (s *Server) AttachCluster(r Replica, opts ClusterOptions) {
	c := &clusterState{replica: r, opts: opts, conns: map[string]*grpc.ClientConn{}}
	s.cluster = c
	s.admin.cluster = c
	s.quota.cluster = c
	s.clusterSvc.cluster = c
	s.scoring.publishing = r.Leading
	s.edge.replicated = true
	s.relay = newRelay(c, s.quota, s.admin.scores, s.log)
	s.quota.relay = s.relay
	s.reg.MustRegister(relayCollector{r: s.relay, c: s.clusterSvc})
}

// ApplyVersion publishes a version the log applied (on every member, in order).
func (s *Server) ApplyVersion(v *berryv1.ConfigVersion) { s.admin.publish(v) }

// removedCheck is how often a member looks whether it was removed from the cluster.
const removedCheck = time.Second

// watchRemoval ends this member's edge streams, refuses new ones and reports
// NOT_SERVING once it is removed from the cluster, until ctx ends: a removed member
// applies nothing any more, and its edges must move to a member that does.
func (s *Server) watchRemoval(ctx context.Context) {
	t := time.NewTicker(removedCheck)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if s.cluster.replica.Removed() {
			s.log.Warn("this member was removed from the cluster: it no longer serves edges (they move to the other members) and reports NOT_SERVING; stop it, or clear its data and Raft directory to add it again")
			s.health.Shutdown()
			s.edge.refuse("this control plane was removed from its cluster: connect to another member")
			return
		}
	}
}

// LeaderChanged is told when this member gains or loses the leadership: fleet quota
// credit is computed by the leader only.
func (s *Server) LeaderChanged(leading bool) { s.quota.leaderChanged(leading) }

// conn returns a connection to the member serving gRPC at addr.
func (c *clusterState) conn(addr string) (*grpc.ClientConn, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if cc := c.conns[addr]; cc != nil {
		return cc, nil
	}
	opts := c.opts.PeerDial
	if len(opts) == 0 {
		opts = []grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}
	}
	cc, err := grpc.NewClient(addr, opts...)
	if err != nil {
		return nil, err
	}
	c.conns[addr] = cc
	return cc, nil
}

func (c *clusterState) close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, cc := range c.conns {
		_ = cc.Close()
	}
	clear(c.conns)
}

// memberContext returns a context for a call to another member with the cluster's
// credential.
func (c *clusterState) memberContext(ctx context.Context, kv ...string) context.Context {
	if c.opts.Token != "" {
		kv = append(kv, "authorization", "Bearer "+c.opts.Token)
	}
	return metadata.NewOutgoingContext(ctx, metadata.Pairs(kv...))
}

// leaderConn returns a connection to the leader, or the error a caller is told when
// there is none.
func (c *clusterState) leaderConn() (*grpc.ClientConn, string, error) {
	id, addr := c.replica.Leader()
	if id == "" {
		return nil, "", status.Errorf(codes.Unavailable, "%s: %s has no leader (the cluster is electing one, or this member cannot reach a majority); retry, or send the write to another member",
			cluster.ErrNotLeader, c.replica.ID())
	}
	if addr == "" {
		return nil, "", status.Errorf(codes.Unavailable, "%s: the leader is %s, whose gRPC address this member (%s) has not learnt yet; retry", cluster.ErrNotLeader, id, c.replica.ID())
	}
	cc, err := c.conn(addr)
	if err != nil {
		return nil, "", status.Errorf(codes.Unavailable, "dial the leader %s at %s: %v", id, addr, err)
	}
	return cc, id + " at " + addr, nil
}

// forwardSlot is put in each unary call's context: the write path marks it when the
// call must go to the leader instead.
type forwardSlot struct{ toLeader bool }

type forwardKey struct{}

// markForward marks ctx's call for the leader, and reports whether it can be
// forwarded (false: no interceptor put a slot, e.g. a write the server makes itself).
func markForward(ctx context.Context) bool {
	if s, ok := ctx.Value(forwardKey{}).(*forwardSlot); ok {
		s.toLeader = true
		return true
	}
	return false
}

// forward is the unary interceptor of a clustered control plane: a call whose write
// this member cannot make (it does not lead) is sent to the leader with the caller's
// own credentials, and the leader's answer returned as is. The client never needs to
// know who leads.
func (s *Server) forward(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	c := s.cluster
	if c == nil {
		return handler(ctx, req)
	}
	// A write RPC goes to the leader whole, before this member reads anything for
	// it: what a follower has applied may lag the leader by a heartbeat.
	if !writeMethod(info.FullMethod) || c.replica.Leading() {
		slot := &forwardSlot{}
		resp, err := handler(context.WithValue(ctx, forwardKey{}, slot), req)
		if !slot.toLeader {
			return resp, err
		}
	}
	in, _ := metadata.FromIncomingContext(ctx)
	if len(in.Get(mdForwardedBy)) > 0 {
		// Not executed: the member that forwarded it may try the new leader.
		_ = grpc.SetTrailer(ctx, metadata.Pairs(mdNotLeader, c.replica.ID()))
		return nil, status.Errorf(codes.Unavailable, "%s: %s was sent this call by %s as the leader, and no longer leads; retry",
			cluster.ErrNotLeader, c.replica.ID(), in.Get(mdForwardedBy)[0])
	}
	// During an election there is no leader for a moment (about a second): the call
	// waits for one, for half its deadline and at most forwardWait, rather than
	// failing.
	patience := forwardWait
	if d, ok := ctx.Deadline(); ok {
		// Leave the caller time to read why, instead of its own deadline's error.
		patience = min(patience, time.Until(d)/2)
	}
	wait := time.NewTimer(patience)
	defer wait.Stop()
	for {
		resp, again, err := c.forwardOnce(ctx, in, info, req)
		if !again {
			return resp, err
		}
		select {
		case <-time.After(forwardRetry):
		case <-wait.C:
			return nil, err
		case <-ctx.Done():
			return nil, err
		}
	}
}

const (
	// mdNotLeader is the trailer of a forwarded call refused, not executed, by a
	// member that no longer leads.
	mdNotLeader = "berry-not-leader"
	// forwardWait bounds how long a follower waits for a leader to forward a call to;
	// forwardRetry is how often it looks again.
	forwardWait  = 5 * time.Second
	forwardRetry = 100 * time.Millisecond
)

// forwardOnce sends a call to the leader. again says the call was not executed
// because there was no leader, or the one it went to no longer leads.
func (c *clusterState) forwardOnce(ctx context.Context, in metadata.MD, info *grpc.UnaryServerInfo, req any) (resp any, again bool, err error) {
	cc, leader, err := c.leaderConn()
	if err != nil {
		return nil, true, err
	}
	if err := connected(ctx, cc); err != nil {
		// Nothing was sent: the leader this member knows is gone (it has not noticed
		// yet), and a new one will be elected.
		return nil, true, status.Errorf(codes.Unavailable, "%s: the leader %s cannot be reached: %v", cluster.ErrNotLeader, leader, err)
	}
	out, err := newResponse(info.FullMethod)
	if err != nil {
		return nil, false, status.Error(codes.Internal, err.Error())
	}
	md := metadata.Pairs(mdForwardedBy, c.replica.ID())
	if auth := in.Get("authorization"); len(auth) > 0 {
		md.Set("authorization", auth...)
	}
	var trailer metadata.MD
	if err := cc.Invoke(metadata.NewOutgoingContext(ctx, md), info.FullMethod, req, out, grpc.Trailer(&trailer)); err != nil {
		if st, ok := status.FromError(err); ok && st.Code() == codes.Unavailable {
			return nil, len(trailer.Get(mdNotLeader)) > 0, status.Errorf(codes.Unavailable, "forwarded to the leader %s: %s", leader, st.Message())
		}
		return nil, false, err
	}
	return out, false, nil
}

var readMethods = func() map[string]bool {
	m := map[string]bool{}
	for _, r := range ReadMethods {
		m[r] = true
	}
	return m
}()

// writeMethod reports whether a method may change the store: every admin and
// cluster RPC but the read role's.
func writeMethod(full string) bool {
	svc, _, _ := splitMethod(full)
	return (svc == berryv1.AdminService_ServiceDesc.ServiceName || svc == berryv1.ClusterService_ServiceDesc.ServiceName) && !readMethods[full]
}

// connected waits (at most a second) until cc has a connection: a call is forwarded
// only on one, so that a failure to reach the leader is known not to have sent it
// (and may be retried), while one after is not retried (it may have been executed).
func connected(ctx context.Context, cc *grpc.ClientConn) error {
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	cc.Connect()
	reset := false
	for {
		s := cc.GetState()
		switch {
		case s == connectivity.Ready:
			return nil
		case s == connectivity.TransientFailure && !reset:
			// A member back after an outage would otherwise wait out gRPC's
			// reconnect backoff (up to two minutes) before anyone forwards to it.
			reset = true
			cc.ResetConnectBackoff()
			if !cc.WaitForStateChange(ctx, s) {
				return ctx.Err()
			}
			continue
		case s == connectivity.TransientFailure, s == connectivity.Shutdown:
			return fmt.Errorf("connection %s", s)
		}
		if !cc.WaitForStateChange(ctx, s) {
			return ctx.Err()
		}
	}
}

// newResponse returns an empty response message of a unary method.
func newResponse(fullMethod string) (proto.Message, error) {
	svc, method, ok := splitMethod(fullMethod)
	if !ok {
		return nil, fmt.Errorf("method %q", fullMethod)
	}
	d, err := protoregistry.GlobalFiles.FindDescriptorByName(protoreflect.FullName(svc))
	if err != nil {
		return nil, err
	}
	sd, ok := d.(protoreflect.ServiceDescriptor)
	if !ok {
		return nil, fmt.Errorf("%s is not a service", svc)
	}
	md := sd.Methods().ByName(protoreflect.Name(method))
	if md == nil {
		return nil, fmt.Errorf("no method %s", fullMethod)
	}
	mt, err := protoregistry.GlobalTypes.FindMessageByName(md.Output().FullName())
	if err != nil {
		return nil, err
	}
	return mt.New().Interface(), nil
}

func splitMethod(full string) (svc, method string, ok bool) {
	if len(full) < 3 || full[0] != '/' {
		return "", "", false
	}
	for i := len(full) - 1; i > 0; i-- {
		if full[i] == '/' {
			return full[1:i], full[i+1:], true
		}
	}
	return "", "", false
}

// notLeader is the error of a write a member cannot make: forwarded by the
// interceptor when it can be, refused naming the leader otherwise.
func (c *clusterState) notLeader(ctx context.Context) error {
	if markForward(ctx) {
		return cluster.ErrNotLeader
	}
	id, addr := c.replica.Leader()
	if id == "" {
		return fmt.Errorf("%w, and there is no leader", cluster.ErrNotLeader)
	}
	return fmt.Errorf("%w: the leader is %s (%s)", cluster.ErrNotLeader, id, addr)
}

// ClusterService implements berryv1.ClusterServiceServer.
type ClusterService struct {
	cluster   *clusterState // nil: one-node mode
	quota     *QuotaService
	scores    *cache.Scores // sent down Relay streams
	callbacks EdgeCallbacks // told of relayed streams and batches, as of the edge service's
	log       *slog.Logger

	relayed, relayedStreams atomic.Int64 // Relay streams open, and the edge streams they relay
	berryv1.UnimplementedClusterServiceServer
}

var errOneNode = status.Error(codes.FailedPrecondition, "this control plane runs as one node (started without --peers or --raft-listen): there is no cluster")

// ClusterStatus implements berryv1.ClusterServiceServer.
func (c *ClusterService) ClusterStatus(ctx context.Context, _ *berryv1.ClusterStatusRequest) (*berryv1.ClusterStatusResponse, error) {
	if c.cluster == nil {
		return nil, errOneNode
	}
	st, err := c.cluster.replica.Status(ctx)
	if err != nil {
		return nil, toStatus(err)
	}
	c.cluster.fillFromLeader(ctx, st)
	return st, nil
}

// AddMember implements berryv1.ClusterServiceServer.
func (c *ClusterService) AddMember(ctx context.Context, req *berryv1.AddMemberRequest) (*berryv1.AddMemberResponse, error) {
	if c.cluster == nil {
		return nil, errOneNode
	}
	if req.GetId() == "" || req.GetRaftAddress() == "" {
		return nil, status.Error(codes.InvalidArgument, "id and raft_address are required")
	}
	if err := c.cluster.replica.AddMember(ctx, req.GetId(), req.GetRaftAddress()); err != nil {
		if errors.Is(err, cluster.ErrNotLeader) {
			err = c.cluster.notLeader(ctx)
		}
		return nil, toStatus(err)
	}
	return &berryv1.AddMemberResponse{}, nil
}

// RemoveMember implements berryv1.ClusterServiceServer.
func (c *ClusterService) RemoveMember(ctx context.Context, req *berryv1.RemoveMemberRequest) (*berryv1.RemoveMemberResponse, error) {
	if c.cluster == nil {
		return nil, errOneNode
	}
	if req.GetId() == "" {
		return nil, status.Error(codes.InvalidArgument, "id is required")
	}
	if err := c.cluster.replica.RemoveMember(ctx, req.GetId()); err != nil {
		if errors.Is(err, cluster.ErrNotLeader) {
			err = c.cluster.notLeader(ctx)
		}
		return nil, toStatus(err)
	}
	return &berryv1.RemoveMemberResponse{}, nil
}

// ForwardUsage implements berryv1.ClusterServiceServer: the leader writes a
// follower's ledger rows through the log.
func (c *ClusterService) ForwardUsage(ctx context.Context, req *berryv1.ForwardUsageRequest) (*berryv1.ForwardUsageResponse, error) {
	if c.cluster == nil {
		return nil, errOneNode
	}
	if !c.cluster.replica.Leading() {
		return nil, toStatus(c.cluster.notLeader(ctx))
	}
	u := req.GetUsage()
	// A follower's quota counters are not the fleet's: only its ledger rows count.
	if err := c.cluster.replica.Apply(ctx, &berryv1.RaftEntry{Entry: &berryv1.RaftEntry_Usage{Usage: &berryv1.UsageEntry{Rows: u.GetRows()}}}); err != nil {
		return nil, toStatus(err)
	}
	return &berryv1.ForwardUsageResponse{}, nil
}

// writeUsage writes a usage batch: to the store in one-node mode; on a cluster
// through the log on the leader, and a follower's ledger rows to the leader.
func (q *QuotaService) writeUsage(ctx context.Context, b *store.UsageBatch) error {
	c := q.cluster
	if c == nil {
		return q.store.WriteUsage(ctx, b)
	}
	if c.replica.Leading() {
		return c.replica.Apply(ctx, &berryv1.RaftEntry{Entry: &berryv1.RaftEntry_Usage{Usage: cluster.UsageEntry(b)}})
	}
	if len(b.Usage) == 0 {
		return nil
	}
	cc, _, err := c.leaderConn()
	if err != nil {
		return err
	}
	rows := cluster.UsageEntry(&store.UsageBatch{Usage: b.Usage})
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	_, err = berryv1.NewClusterServiceClient(cc).ForwardUsage(c.memberContext(ctx), &berryv1.ForwardUsageRequest{Usage: rows})
	return err
}

// gatherFleet adds to out the edges connected to the other members, so that fleet
// status is the same from any member. Each member is asked for its own edges only;
// an edge known to several (it moved) is listed once, where it is connected or else
// where it was seen last. A member that does not answer within a second is left out
// (and named in the log): status must not wait on a lost member.
func (c *clusterState) gatherFleet(ctx context.Context, out *berryv1.FleetStatusResponse) {
	if in, _ := metadata.FromIncomingContext(ctx); len(in.Get(mdLocal)) > 0 {
		return
	}
	if !c.replica.Leading() && c.fleetFromLeader(ctx, out) {
		return
	}
	members, err := c.replica.Members()
	if err != nil {
		return
	}
	type answer struct {
		edges     []*berryv1.EdgeStatus
		rolledOut bool
	}
	answers := make(chan answer, len(members))
	var wg sync.WaitGroup
	for _, addr := range members {
		if addr == "" {
			continue
		}
		wg.Go(func() {
			cc, err := c.conn(addr)
			if err != nil {
				return
			}
			cctx, cancel := context.WithTimeout(ctx, time.Second)
			defer cancel()
			r, err := berryv1.NewAdminServiceClient(cc).FleetStatus(c.memberContext(cctx, mdLocal, "1"), &berryv1.FleetStatusRequest{})
			if err != nil {
				return
			}
			answers <- answer{r.GetEdges(), r.GetRolledOut() && r.GetCurrentVersion() == out.GetCurrentVersion()}
		})
	}
	wg.Wait()
	close(answers)
	byID := map[string]int{}
	for i, e := range out.Edges {
		byID[e.GetEdgeId()] = i
	}
	for a := range answers {
		out.RolledOut = out.RolledOut && a.rolledOut
		for _, e := range a.edges {
			i, ok := byID[e.GetEdgeId()]
			if !ok {
				byID[e.GetEdgeId()] = len(out.Edges)
				out.Edges = append(out.Edges, e)
				continue
			}
			cur := out.Edges[i]
			if (e.GetConnected() && !cur.GetConnected()) ||
				(e.GetConnected() == cur.GetConnected() && e.GetLastSeen().AsTime().After(cur.GetLastSeen().AsTime())) {
				out.Edges[i] = e
			}
		}
	}
}

// fleetFromLeader replaces out by the leader's fleet status: a follower may not know
// every member's address, the leader does (it connects to each). It reports whether
// the leader answered.
func (c *clusterState) fleetFromLeader(ctx context.Context, out *berryv1.FleetStatusResponse) bool {
	cc, _, err := c.leaderConn()
	if err != nil {
		return false
	}
	cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	r, err := berryv1.NewAdminServiceClient(cc).FleetStatus(c.memberContext(cctx), &berryv1.FleetStatusRequest{})
	if err != nil {
		return false
	}
	proto.Reset(out)
	proto.Merge(out, r)
	return true
}

// fillFromLeader completes a follower's status with the members' gRPC addresses the
// leader knows.
func (c *clusterState) fillFromLeader(ctx context.Context, st *berryv1.ClusterStatusResponse) {
	missing := false
	for _, m := range st.GetMembers() {
		missing = missing || m.GetGrpcAddress() == ""
	}
	if !missing || st.GetState() == "Leader" {
		return
	}
	cc, _, err := c.leaderConn()
	if err != nil {
		return
	}
	cctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	r, err := berryv1.NewClusterServiceClient(cc).ClusterStatus(c.memberContext(cctx), &berryv1.ClusterStatusRequest{})
	if err != nil {
		return
	}
	addrs := map[string]string{}
	for _, m := range r.GetMembers() {
		addrs[m.GetId()] = m.GetGrpcAddress()
	}
	for _, m := range st.GetMembers() {
		if m.GetGrpcAddress() == "" {
			m.GrpcAddress = addrs[m.GetId()]
		}
	}
}
