package cpsync

import (
	"context"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/berry-gateway/berry/edge/internal/serving"
	berryv1 "github.com/berry-gateway/berry/pkg/api/berry/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
)

func TestParseTargets(t *testing.T) {
	tests := []struct {
		in      string
		static  []string // nil: a DNS name
		dnsHost string
		err     string
	}{
		{in: "127.0.0.1:9090", static: []string{"127.0.0.1:9090"}},
		{in: "127.0.0.1:9090,127.0.0.2:9090, 127.0.0.3:9090", static: []string{"127.0.0.1:9090", "127.0.0.2:9090", "127.0.0.3:9090"}},
		{in: "[::1]:9090", static: []string{"[::1]:9090"}},
		{in: "localhost:9090", static: []string{"localhost:9090"}},
		{in: "cp-0.cp:9090,cp-1.cp:9090", static: []string{"cp-0.cp:9090", "cp-1.cp:9090"}},
		{in: "dns:///cp.example:9090", static: []string{"dns:///cp.example:9090"}},
		{in: "berry-controlplane.berry.svc:9090", dnsHost: "berry-controlplane.berry.svc"},
		{in: "", err: "no control-plane address"},
		{in: "127.0.0.1:9090,,127.0.0.2:9090", err: "address 2 of"},
		{in: "127.0.0.1", err: "want host:port"},
		{in: ":9090", err: "want host:port"},
		{in: "a:1,a:1", err: "listed twice"},
	}
	for _, tc := range tests {
		got, err := ParseTargets(tc.in)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%q: err = %v, want %q", tc.in, err, tc.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%q: %v", tc.in, err)
			continue
		}
		switch g := got.(type) {
		case Static:
			var addrs []string
			for _, x := range g {
				addrs = append(addrs, x.Addr)
			}
			if !slices.Equal(addrs, tc.static) {
				t.Errorf("%q: static %v, want %v", tc.in, addrs, tc.static)
			}
		case *DNS:
			if g.Host != tc.dnsHost || g.Port != "9090" || tc.static != nil {
				t.Errorf("%q: DNS %s port %s, want static %v / name %q", tc.in, g.Host, g.Port, tc.static, tc.dnsHost)
			}
		}
	}
}

// TestDNSResolvesEveryRecord: a name resolves to one target per address, each
// carrying the name as its authority (what TLS checks).
func TestDNSResolvesEveryRecord(t *testing.T) {
	got, err := (&DNS{Host: "localhost", Port: "9090"}).Resolve(context.Background())
	if err != nil {
		t.Skipf("this machine cannot resolve localhost: %v", err)
	}
	if len(got) == 0 {
		t.Fatal("no targets")
	}
	for _, tg := range got {
		host, port, err := net.SplitHostPort(tg.Addr)
		if err != nil || port != "9090" || net.ParseIP(host) == nil || !net.ParseIP(host).IsLoopback() {
			t.Errorf("target %+v: want a loopback IP on 9090", tg)
		}
		if tg.Authority != "localhost:9090" {
			t.Errorf("target %+v: authority %q", tg, tg.Authority)
		}
	}
	if _, err := (&DNS{Host: "no-such-host.invalid", Port: "1"}).Resolve(context.Background()); err == nil {
		t.Error("resolving a .invalid name succeeded")
	}
}

// TestNextCyclesAndSpreads: one edge tries every address in turn; edges start on
// different addresses, and those of a failed address spread over the others.
func TestNextCyclesAndSpreads(t *testing.T) {
	targets := []Target{{Addr: "a:1"}, {Addr: "b:1"}, {Addr: "c:1"}}
	for seed := range uint64(50) {
		seen := map[string]bool{}
		last := ""
		for range len(targets) {
			last = next(targets, last, seed).Addr
			seen[last] = true
		}
		if len(seen) != len(targets) {
			t.Fatalf("seed %d: %d attempts visited %v", seed, len(targets), seen)
		}
		if again := next(targets, last, seed).Addr; again != next(targets, "", seed).Addr {
			t.Fatalf("seed %d: the walk does not come round to its start", seed)
		}
	}
	const edges = 3000
	first := map[string]int{}
	afterA := map[string]int{}
	for seed := range uint64(edges) {
		first[next(targets, "", seed).Addr]++
		afterA[next(targets, "a:1", seed).Addr]++
	}
	for _, tg := range targets {
		// Uniform would be 1000 each; lockstep would put all 3000 on one.
		if n := first[tg.Addr]; n < edges/3/2 {
			t.Errorf("only %d of %d edges start on %s: %v", n, edges, tg.Addr, first)
		}
	}
	if afterA["b:1"] < edges/2/2 || afterA["c:1"] < edges/2/2 {
		t.Errorf("edges leaving a:1 do not spread over b and c: %v", afterA)
	}
}

// nodeServer is a control-plane node as an edge sees it: it accepts the hello, sends
// its current snapshot when the edge does not hold it, and keeps the stream open.
type nodeServer struct {
	berryv1.UnimplementedEdgeServiceServer
	snap    *berryv1.Snapshot
	mu      sync.Mutex
	streams int
	acks    []uint64
	nacks   int
}

func (s *nodeServer) Sync(stream grpc.BidiStreamingServer[berryv1.SyncRequest, berryv1.SyncResponse]) error {
	m, err := stream.Recv()
	if err != nil {
		return err
	}
	s.mu.Lock()
	s.streams++
	snap := s.snap
	s.mu.Unlock()
	if err := stream.SendHeader(metadata.Pairs("berry-lineage", snap.GetLineage())); err != nil {
		return err
	}
	if m.GetHello().GetAppliedVersion() != snap.GetVersion() {
		if err := stream.Send(&berryv1.SyncResponse{Kind: &berryv1.SyncResponse_Snapshot{Snapshot: snap}}); err != nil {
			return err
		}
	}
	for {
		m, err := stream.Recv()
		if err != nil {
			return nil
		}
		if a := m.GetAck(); a != nil {
			s.mu.Lock()
			if a.GetAccepted() {
				s.acks = append(s.acks, a.GetVersion())
			} else {
				s.nacks++
			}
			s.mu.Unlock()
		}
	}
}

func (s *nodeServer) counts() (streams int, acks []uint64, nacks int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.streams, slices.Clone(s.acks), s.nacks
}

// serveNode starts a node on a loopback port; stop ends it like a killed process.
func serveNode(t *testing.T, srv *nodeServer) (addr string, stop func()) {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gs := grpc.NewServer()
	berryv1.RegisterEdgeServiceServer(gs, srv)
	go func() { _ = gs.Serve(lis) }()
	t.Cleanup(gs.Stop)
	return lis.Addr().String(), gs.Stop
}

func insecureDial(tg Target) (*grpc.ClientConn, error) {
	return grpc.NewClient(tg.Addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
}

// TestMovesToAnotherAddress: with one address that refuses connections and two
// nodes, the edge connects to a node; when that node dies it moves to the other,
// and a node behind the version it serves (a lagging follower) is neither applied
// nor NACKed: the edge waits LagWait, then moves on.
func TestMovesToAnotherAddress(t *testing.T) {
	dead := freeLoopback(t)
	current := &nodeServer{snap: validSnap(4, "l")}
	lagging := &nodeServer{snap: validSnap(2, "l")}
	curAddr, stopCurrent := serveNode(t, current)
	lagAddr, _ := serveNode(t, lagging)
	targets := &changingTargets{}
	targets.set(Target{Addr: dead}, Target{Addr: curAddr})
	var rt serving.Runtime
	c := &Client{
		Targets: targets, Dial: insecureDial, EdgeID: "e", Runtime: &rt,
		MinBackoff: time.Millisecond, MaxBackoff: 20 * time.Millisecond, LagWait: 200 * time.Millisecond,
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()

	waitFor(t, "version 4 applied from "+curAddr, func() bool {
		v, _ := rt.Applied()
		return v == 4 && c.Address() == curAddr
	})
	waitFor(t, "ACK of 4", func() bool { _, a, _ := current.counts(); return slices.Equal(a, []uint64{4}) })

	// A node that lags at 2 joins the records, and the node the edge is on dies.
	targets.set(Target{Addr: dead}, Target{Addr: curAddr}, Target{Addr: lagAddr})
	stopCurrent()
	waitFor(t, "two streams to the lagging node", func() bool {
		n, _, _ := lagging.counts()
		return n >= 2 // it stayed LagWait, left, came back round
	})
	if v, _ := rt.Applied(); v != 4 {
		t.Fatalf("serving %d after a lagging node sent 2, want 4", v)
	}
	if _, acks, nacks := lagging.counts(); len(acks) != 0 || nacks != 0 {
		t.Fatalf("the lagging node got ACKs %v and %d NACKs, want none", acks, nacks)
	}

	// It catches up: the edge stays, and ACKs the version.
	lagging.mu.Lock()
	lagging.snap = validSnap(5, "l")
	lagging.mu.Unlock()
	waitFor(t, "version 5 from the caught-up node", func() bool {
		v, _ := rt.Applied()
		return v == 5 && c.Address() == lagAddr
	})
	cancel()
	<-done
	if c.Address() != "" {
		t.Fatalf("Address = %q after Run ended", c.Address())
	}
}

// TestHandshakeTimeout: a node that accepts connections but never answers is left
// for the next address.
func TestHandshakeTimeout(t *testing.T) {
	silent, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	var held []net.Conn
	var mu sync.Mutex
	go func() {
		for {
			c, err := silent.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			held = append(held, c) // read nothing, answer nothing
			mu.Unlock()
		}
	}()
	defer func() {
		mu.Lock()
		defer mu.Unlock()
		for _, c := range held {
			c.Close()
		}
	}()
	good := &nodeServer{snap: validSnap(1, "l")}
	goodAddr, _ := serveNode(t, good)
	var rt serving.Runtime
	c := &Client{
		Targets: Static{{Addr: silent.Addr().String()}, {Addr: goodAddr}}, Dial: insecureDial, EdgeID: "e", Runtime: &rt,
		MinBackoff: time.Millisecond, MaxBackoff: 20 * time.Millisecond, HandshakeTimeout: 200 * time.Millisecond,
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	waitFor(t, "connected to the answering node", func() bool { return c.Address() == goodAddr })
	cancel()
	<-done
}

// changingTargets are records that change between resolutions, as DNS ones do.
type changingTargets struct {
	mu   sync.Mutex
	list []Target
}

func (c *changingTargets) set(list ...Target) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.list = list
}

func (c *changingTargets) Resolve(context.Context) ([]Target, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.list), nil
}

func freeLoopback(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// TestOneAddressWaitsForALaggingNode: with no other address to try, the edge stays
// on a node behind its version rather than reconnecting to it over and over.
func TestOneAddressWaitsForALaggingNode(t *testing.T) {
	lagging := &nodeServer{snap: validSnap(2, "l")}
	addr, _ := serveNode(t, lagging)
	var rt serving.Runtime
	if err := rt.Apply(validSnap(4, "l")); err != nil {
		t.Fatal(err)
	}
	c := &Client{
		Targets: Static{{Addr: addr}}, Dial: insecureDial, EdgeID: "e", Runtime: &rt,
		MinBackoff: time.Millisecond, MaxBackoff: 20 * time.Millisecond, LagWait: 20 * time.Millisecond,
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	waitFor(t, "connected", func() bool { return c.Address() == addr })
	// Many lag waits long: a client that left would have come back by now.
	time.Sleep(300 * time.Millisecond)
	if n, acks, nacks := lagging.counts(); n != 1 || len(acks) != 0 || nacks != 0 {
		t.Fatalf("%d streams, ACKs %v, %d NACKs; want one stream and no answer", n, acks, nacks)
	}
	if v, _ := rt.Applied(); v != 4 {
		t.Fatalf("serving %d, want 4", v)
	}
	cancel()
	<-done
}
