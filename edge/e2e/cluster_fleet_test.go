package e2e

import (
	"context"
	"fmt"
	"io"
	"maps"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	berryv1 "github.com/berry-gateway/berry/pkg/api/berry/v1"
)

// clusterEdge is an edge given every member's address, with where it was before the
// leader was killed and what it saw after.
type clusterEdge struct {
	*edge
	id     string
	before string // the member it was connected to before the kill

	// Set by its watcher after the kill.
	after     string        // the live member it was last seen on
	reconnect time.Duration // from the kill until connected to a live member
	drops     int           // times a poll found it off a live member after one on
	watchErr  error
}

// connectedMember waits until the edge serves version 1 on a stream and returns the
// address it is on.
func (e *clusterEdge) connectedMember(t *testing.T) string {
	t.Helper()
	var on string
	eventually(t, e.id+" connected", func() error {
		s, err := e.state()
		if err != nil {
			return err
		}
		if !s.Connected || s.ControlPlane == "" || s.ConfigVersion != 1 {
			return fmt.Errorf("%+v", s)
		}
		on = s.ControlPlane
		return nil
	})
	return on
}

// placeEdges starts n edges, each given all the members' addresses, with at least
// onLeader of them connected to the leader.
//
// An edge does not honour the order of --control-plane: cpsync ranks the addresses
// by a hash seeded at random when the process starts, so each edge lands on the
// leader with a chance of one in three whatever the order given. Edges that landed on
// a follower are replaced by fresh processes (a new seed, a new id so that fleet status
// keeps no stale entry under a live edge's name) until enough are on the leader;
// each start is a one-in-three draw, and the starts are bounded.
func placeEdges(t *testing.T, c *cpCluster, leader *cpMember, n, onLeader int) []*clusterEdge {
	t.Helper()
	const maxStarts = 40
	starts := 0
	start := func() *clusterEdge {
		starts++
		id := fmt.Sprintf("fleet-%d", starts)
		e := &clusterEdge{edge: startCachedEdge(t, c.servers(), id, t.TempDir()), id: id}
		e.before = e.connectedMember(t)
		return e
	}
	var edges []*clusterEdge
	for range n {
		edges = append(edges, start())
	}
	for {
		var on int
		for _, e := range edges {
			if e.before == leader.grpcAddr {
				on++
			}
		}
		if on >= onLeader {
			return edges
		}
		if starts >= maxStarts {
			t.Fatalf("%d edge starts and only %d on the leader, want %d", starts, on, onLeader)
		}
		i := slices.IndexFunc(edges, func(e *clusterEdge) bool { return e.before != leader.grpcAddr })
		edges[i].stop(t)
		edges[i] = start()
	}
}

// watch polls the edge every 50 ms from the kill until ctx is done. reconnect is
// the time from the kill to the first poll that found the edge connected to a live
// member after one that did not (for an edge on the dead member, its first poll on a
// live one); an edge on a live member that no poll saw off it keeps 0.
func (e *clusterEdge) watch(ctx context.Context, dead string, killed time.Time) {
	good, seenBad := false, e.before == dead
	for {
		s, err := e.state()
		ok := err == nil && s.Connected && s.ControlPlane != "" && s.ControlPlane != dead
		switch {
		case ok && !good && seenBad:
			e.reconnect = time.Since(killed)
			e.after = s.ControlPlane
		case ok:
			e.after = s.ControlPlane
		case good:
			e.drops++
		}
		seenBad = seenBad || !ok
		good = ok
		select {
		case <-ctx.Done():
			if !good {
				e.watchErr = fmt.Errorf("not connected to a live member when the test ended: %+v %v", s, err)
			}
			return
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// clientLoad sends chat completions to one edge one after another until stopped or
// bounded, counting failures and any step back of the version it serves.
type clientLoad struct {
	sent     atomic.Int64 // read by the test while it runs
	failed   int
	failures []string // the first distinct ones
	wentBack string
}

func (l *clientLoad) run(ctx context.Context, e *edge, maxRequests int64) {
	client := &http.Client{Timeout: 15 * time.Second}
	body := `{"model":"chat","messages":[{"role":"user","content":"hi"}]}`
	var served uint64
	fail := func(why string) {
		l.failed++
		if len(l.failures) < 3 && !slices.Contains(l.failures, why) {
			l.failures = append(l.failures, why)
		}
	}
	for l.sent.Load() < maxRequests && ctx.Err() == nil {
		req, _ := http.NewRequest(http.MethodPost, e.url+"/v1/chat/completions", strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+userToken)
		req.Header.Set("Content-Type", "application/json")
		resp, err := client.Do(req)
		l.sent.Add(1)
		if err != nil {
			fail(err.Error())
		} else {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK || !strings.Contains(string(b), "up-a") {
				fail(fmt.Sprintf("%d %.200s", resp.StatusCode, b))
			}
		}
		if v, err := e.configVersion(); err == nil {
			if v < served && l.wentBack == "" {
				l.wentBack = fmt.Sprintf("served %d after %d", v, served)
			}
			served = max(served, v)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestClusterLeaderKilledEdgesMove runs four edges on a 3-member cluster, each given
// every member's address and at least two of them on the leader, with clients on every
// edge and config writes through berryctl; the leader is killed (SIGKILL) after 20 of
// 60 writes. The edges that were on it connect to a live member, no client request
// fails, no edge NACKs or serves an older version, and the newest acknowledged version
// reaches every edge. It logs, per edge, the time from the kill until it is connected
// to a live member, and the fleet figure: the time for all edges to reconnect.
func TestClusterLeaderKilledEdgesMove(t *testing.T) {
	c, env := startBaseCluster(t)
	leader := c.leader(t)
	memberAt := map[string]string{}
	for _, m := range c.members {
		memberAt[m.grpcAddr] = m.id
	}
	const edgeCount, onLeaderMin = 4, 2
	edges := placeEdges(t, c, leader, edgeCount, onLeaderMin)

	// Clients on every edge through the whole kill window.
	const maxRequestsPerEdge = 1500 // with the 20 ms pause, well past the window
	loads := make([]clientLoad, len(edges))
	ctx, stopClients := context.WithTimeout(context.Background(), 90*time.Second)
	var clients, watchers sync.WaitGroup
	defer func() { // a failed check must not leave them polling
		stopClients()
		clients.Wait()
		watchers.Wait()
	}()
	for i, e := range edges {
		clients.Go(func() { loads[i].run(ctx, e.edge, maxRequestsPerEdge) })
	}
	clientsStarted := time.Now()
	// The window has traffic on both sides of the kill: some before it, and the
	// later wait for requests after it.
	const before, after = 50, 200
	sentBy := func(want int64, base []int64) error {
		for i, e := range edges {
			if got := loads[i].sent.Load() - base[i]; got < want {
				return fmt.Errorf("%s: %d client requests, want %d", e.id, got, want)
			}
		}
		return nil
	}
	waitUntil(t, 60*time.Second, "client requests before the kill", func() error { return sentBy(before, make([]int64, len(edges))) })
	var sentAtKill []int64

	const writes, killAt = 60, 20
	w := writesThroughKill(t, c, env, leader, writes, killAt, func(killedAt time.Time) {
		for i := range loads {
			sentAtKill = append(sentAtKill, loads[i].sent.Load())
		}
		for _, e := range edges {
			watchers.Go(func() { e.watch(ctx, leader.grpcAddr, killedAt) })
		}
	})
	acked, refused, killedAt, firstAfterKill := w.acked, w.refused, w.killedAt, w.firstAfterKill

	survivors := c.others(leader)
	n := sameHistory(t, survivors)
	newest := slices.Max(slices.Collect(maps.Keys(acked)))
	if newest > n {
		t.Fatalf("version %d was acknowledged, the survivors hold %d", newest, n)
	}
	for _, e := range edges {
		e.waitVersion(t, n)
	}
	for _, m := range survivors {
		eventually(t, "fleet status from "+m.id, func() error { return fleetAt(m, edges, n) })
	}
	waitUntil(t, 60*time.Second, "client requests after the kill", func() error { return sentBy(after, sentAtKill) })
	stopClients()
	clients.Wait()
	watchers.Wait()
	window := time.Since(clientsStarted)

	var slowest time.Duration
	var onLeader int
	var sent int64
	for i, e := range edges {
		if e.watchErr != nil {
			t.Errorf("%s (on %s before the kill): %v", e.id, memberAt[e.before], e.watchErr)
			continue
		}
		if e.before == leader.grpcAddr {
			onLeader++
			t.Logf("%s: on %s (the leader) before the kill, connected to %s %v after it",
				e.id, memberAt[e.before], memberAt[e.after], e.reconnect.Round(time.Millisecond))
		} else {
			t.Logf("%s: on %s (a follower) before the kill, on %s after it, %d drops seen, %v off a live member",
				e.id, memberAt[e.before], memberAt[e.after], e.drops, e.reconnect.Round(time.Millisecond))
		}
		slowest = max(slowest, e.reconnect)
		if want := fmt.Sprintf(`berry_control_plane_connected{address=%q} 1`, e.after); !metricShows(e.edge, want) {
			t.Errorf("%s: /metrics lacks %s", e.id, want)
		}
		l := &loads[i]
		sent += l.sent.Load()
		if l.failed != 0 {
			t.Errorf("%s: %d of %d client requests failed: %q", e.id, l.failed, l.sent.Load(), l.failures)
		}
		if l.wentBack != "" {
			t.Errorf("%s: the version served went back: %s", e.id, l.wentBack)
		}
	}
	if onLeader < onLeaderMin {
		t.Fatalf("%d edges on the leader before the kill, want at least %d", onLeader, onLeaderMin)
	}
	t.Logf("leader %s killed after %d writes: all %d edges (%d of them on it) connected to a live member within %v of the kill (time for all edges to reconnect)",
		leader.id, killAt, len(edges), onLeader, slowest.Round(time.Millisecond))
	t.Logf("%d client requests over %v on %d edges, none failed; %d of %d writes acknowledged (%d refused), first accepted %v after the kill; every edge at version %d",
		sent, window.Round(time.Second), len(edges), len(acked), writes, refused, firstAfterKill.Sub(killedAt).Round(time.Millisecond), n)
	for _, e := range edges {
		if strings.Contains(e.output(), "snapshot rejected") {
			t.Errorf("%s NACKed a snapshot:\n%s", e.id, e.output())
		}
	}
}

// fleetAt checks that m's fleet status shows every edge connected, at version v,
// with no NACK.
func fleetAt(m *cpMember, edges []*clusterEdge, v uint64) error {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	fs, err := m.admin.FleetStatus(ctx, &berryv1.FleetStatusRequest{})
	if err != nil {
		return err
	}
	for _, e := range edges {
		i := slices.IndexFunc(fs.GetEdges(), func(s *berryv1.EdgeStatus) bool { return s.GetEdgeId() == e.id })
		if i < 0 {
			return fmt.Errorf("%s not in the fleet status", e.id)
		}
		s := fs.GetEdges()[i]
		if s.GetLastNack() != "" {
			return fmt.Errorf("%s NACKed: %s", e.id, s.GetLastNack())
		}
		if !s.GetConnected() || s.GetAppliedVersion() != v || s.GetLastAckVersion() != v {
			return fmt.Errorf("%s: connected %v, applied %d, acked %d; want %d", e.id, s.GetConnected(), s.GetAppliedVersion(), s.GetLastAckVersion(), v)
		}
	}
	return nil
}

func metricShows(e *edge, line string) bool {
	m, err := e.metricsText()
	return err == nil && strings.Contains(m, line)
}
