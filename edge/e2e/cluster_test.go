package e2e

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	berryv1 "github.com/berry-gateway/berry/pkg/api/berry/v1"
	"github.com/berry-gateway/berry/pkg/upstreamsim"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

// cpMember is one berry-controlplane of a Raft cluster, run as a real process.
type cpMember struct {
	id, grpcAddr, raftAddr, dir string
	join                        bool // started without --peers, to be added
	p                           *proc
	admin                       berryv1.AdminServiceClient
	members                     berryv1.ClusterServiceClient
}

type cpCluster struct {
	secret  string
	peers   string
	members []*cpMember
}

// startCPCluster starts n members bootstrapped together, with the role tokens, and
// waits until one of them leads.
func startCPCluster(t *testing.T, n int) *cpCluster {
	t.Helper()
	dir := t.TempDir()
	c := &cpCluster{secret: writeFile(t, filepath.Join(dir, "raft-secret"), "e2e-cluster-secret-0123456789abcdef\n")}
	var peers []string
	for i := range n {
		m := &cpMember{id: fmt.Sprintf("n%d", i+1), grpcAddr: freeAddr(t), raftAddr: freeAddr(t), dir: t.TempDir()}
		c.members = append(c.members, m)
		peers = append(peers, m.id+"="+m.raftAddr)
	}
	c.peers = strings.Join(peers, ",")
	for _, m := range c.members {
		c.start(t, m)
	}
	c.leader(t)
	return c
}

func (c *cpCluster) start(t *testing.T, m *cpMember) {
	t.Helper()
	args := []string{"--data", filepath.Join(m.dir, "berry.db"),
		"--grpc-listen", m.grpcAddr, "--node-id", m.id, "--raft-listen", m.raftAddr, "--raft-secret-file", c.secret,
		"--admin-token", adminToken, "--read-token", readToken, "--edge-token", edgeToken}
	if !m.join {
		args = append(args, "--peers", c.peers)
	}
	m.p = startProc(t, "controlplane "+m.id, "berry-controlplane", args...)
	conn, err := grpc.NewClient(m.grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithPerRPCCredentials(bearerCreds(adminToken)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	m.admin, m.members = berryv1.NewAdminServiceClient(conn), berryv1.NewClusterServiceClient(conn)
	eventually(t, m.id+" answers", func() error {
		_, err := m.status()
		return err
	})
}

func (m *cpMember) status() (*berryv1.ClusterStatusResponse, error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	return m.members.ClusterStatus(ctx, &berryv1.ClusterStatusRequest{})
}

func (m *cpMember) alive() bool {
	select {
	case <-m.p.done:
		return false
	default:
		return true
	}
}

// leader returns the member that leads, as the live members agree.
func (c *cpCluster) leader(t *testing.T) *cpMember {
	t.Helper()
	var l *cpMember
	eventually(t, "a leader", func() error {
		for _, m := range c.members {
			if !m.alive() {
				continue
			}
			st, err := m.status()
			if err == nil && st.GetState() == "Leader" {
				l = m
				return nil
			}
		}
		return errors.New("no member leads")
	})
	return l
}

// startBaseCluster starts a simulator and a 3-member cluster holding the base config
// (imported with berryctl), and returns the cluster with berryctl's environment.
func startBaseCluster(t *testing.T) (*cpCluster, []string) {
	t.Helper()
	sim := startSim(t, upstreamsim.Options{Name: "sim-a", APIKey: "sk-sim-a-secret"})
	c := startCPCluster(t, 3)
	env := []string{"BERRY_TOKEN=" + adminToken}
	base := writeFile(t, filepath.Join(t.TempDir(), "base.toml"), configTOML(sim.URL(), sim.URL(), "a"))
	if code, _, stderr := berryctl(t, env, "--server", c.servers(), "import", base); code != 0 {
		t.Fatalf("import: %s", stderr)
	}
	return c, env
}

// others returns the members but m.
func (c *cpCluster) others(m *cpMember) []*cpMember {
	var out []*cpMember
	for _, o := range c.members {
		if o != m {
			out = append(out, o)
		}
	}
	return out
}

// servers is berryctl's --server list: every member.
func (c *cpCluster) servers() string {
	var s []string
	for _, m := range c.members {
		s = append(s, m.grpcAddr)
	}
	return strings.Join(s, ",")
}

// history returns a member's versions, oldest first, with their messages.
func (m *cpMember) history(t *testing.T) []*berryv1.VersionInfo {
	t.Helper()
	var out []*berryv1.VersionInfo
	before := uint64(0)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		r, err := m.admin.ListVersions(ctx, &berryv1.ListVersionsRequest{Before: before, Limit: 1000})
		cancel()
		if err != nil {
			t.Fatalf("%s: ListVersions: %v", m.id, err)
		}
		if len(r.GetVersions()) == 0 {
			break
		}
		out = append(out, r.GetVersions()...)
		before = r.GetVersions()[len(r.GetVersions())-1].GetVersion()
		if before <= 1 {
			break
		}
	}
	slices.Reverse(out)
	return out
}

func (m *cpMember) current(t *testing.T) uint64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	r, err := m.admin.GetCurrentVersion(ctx, &berryv1.GetCurrentVersionRequest{})
	if err != nil {
		return 0
	}
	return r.GetVersion()
}

// sameHistory checks that the members hold versions 1..N without a gap, identical
// (number, message, author, time) on each, and returns N.
func sameHistory(t *testing.T, ms []*cpMember) uint64 {
	t.Helper()
	var want []*berryv1.VersionInfo
	eventually(t, "members at the same version", func() error {
		cur := ms[0].current(t)
		for _, m := range ms[1:] {
			if got := m.current(t); got != cur {
				return fmt.Errorf("%s at %d, %s at %d", ms[0].id, cur, m.id, got)
			}
		}
		return nil
	})
	for i, m := range ms {
		h := m.history(t)
		for j, v := range h {
			if v.GetVersion() != uint64(j+1) {
				t.Fatalf("%s: version %d at position %d: the history has a gap", m.id, v.GetVersion(), j+1)
			}
		}
		if i == 0 {
			want = h
			continue
		}
		if len(h) != len(want) {
			t.Fatalf("%s holds %d versions, %s %d", m.id, len(h), ms[0].id, len(want))
		}
		for j := range h {
			a, b := h[j], want[j]
			if a.GetMessage() != b.GetMessage() || a.GetAuthor() != b.GetAuthor() || !a.GetCreatedAt().AsTime().Equal(b.GetCreatedAt().AsTime()) {
				t.Fatalf("version %d differs: %s has %q by %s at %v, %s has %q by %s at %v", a.GetVersion(),
					m.id, a.GetMessage(), a.GetAuthor(), a.GetCreatedAt().AsTime(), ms[0].id, b.GetMessage(), b.GetAuthor(), b.GetCreatedAt().AsTime())
			}
		}
	}
	return uint64(len(want))
}

var newVersion = regexp.MustCompile(`as new version (\d+)`)

// writeRun is what writesThroughKill saw.
type writeRun struct {
	acked    map[uint64]string // version → message of the write acknowledged as it
	refused  int
	refusals []string // the first distinct errors, for the log
	// killedAt is when the leader was sent SIGKILL; firstAfterKill when the first
	// write after it was acknowledged.
	killedAt, firstAfterKill time.Time
}

// writesThroughKill makes writes config writes with berryctl (`rollback 1`, a
// process each, given every member's address) and SIGKILLs the leader before write
// killAt, calling atKill (if set) with the time of the kill before waiting for the
// process to end. A write refused before the kill, a version acknowledged twice, or
// no write acknowledged after the kill fails the test.
func writesThroughKill(t *testing.T, c *cpCluster, env []string, leader *cpMember, writes, killAt int, atKill func(time.Time)) writeRun {
	t.Helper()
	w := writeRun{acked: map[uint64]string{}}
	for i := range writes {
		if i == killAt {
			if err := leader.p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			w.killedAt = time.Now()
			if atKill != nil {
				atKill(w.killedAt)
			}
			<-leader.p.done
		}
		msg := fmt.Sprintf("write-%03d", i)
		code, stdout, stderr := berryctl(t, env, "--server", c.servers(), "--message", msg, "rollback", "1")
		if code != 0 {
			if i < killAt {
				t.Fatalf("write %d before the kill failed: %s", i, stderr)
			}
			w.refused++
			if len(w.refusals) < 3 && !slices.Contains(w.refusals, stderr) {
				w.refusals = append(w.refusals, stderr)
			}
			continue
		}
		m := newVersion.FindStringSubmatch(stdout)
		if m == nil {
			t.Fatalf("write %d: unexpected output %q", i, stdout)
		}
		v, _ := strconv.ParseUint(m[1], 10, 64)
		if prev, dup := w.acked[v]; dup {
			t.Fatalf("version %d acknowledged twice: %s and %s", v, prev, msg)
		}
		w.acked[v] = msg
		if i >= killAt && w.firstAfterKill.IsZero() {
			w.firstAfterKill = time.Now()
		}
	}
	if w.firstAfterKill.IsZero() {
		t.Fatal("no write was accepted after the leader was killed")
	}
	return w
}

// TestClusterLeaderKilledDuringWrites sends 500 config writes through berryctl (a
// process per write, given every member's address) and SIGKILLs the leader after the
// first 150. Every write berryctl reported as done must be on the survivors, with
// its number; the histories are gap-free and identical on every member, the killed
// one too once restarted. An edge connected to a follower serves the last version.
func TestClusterLeaderKilledDuringWrites(t *testing.T) {
	c, env := startBaseCluster(t)
	leader := c.leader(t)
	follower := c.others(leader)[0]
	e := startCachedEdge(t, follower.grpcAddr, "e1", t.TempDir())
	e.waitVersion(t, 1)

	const writes, killAt = 500, 150
	w := writesThroughKill(t, c, env, leader, writes, killAt, nil)
	acked, failed, refusals, killedAt, firstAfterKill := w.acked, w.refused, w.refusals, w.killedAt, w.firstAfterKill
	t.Logf("leader %s killed after %d writes; first write accepted %v after the kill; %d of %d writes acknowledged, %d refused (while electing)",
		leader.id, killAt, firstAfterKill.Sub(killedAt).Round(time.Millisecond), len(acked), writes, failed)
	for _, r := range refusals {
		t.Logf("refused: %s", strings.TrimSpace(r))
	}

	survivors := c.others(leader)
	n := sameHistory(t, survivors)
	h := survivors[0].history(t)
	for v, msg := range acked {
		if v > n || h[v-1].GetMessage() != msg {
			t.Fatalf("acknowledged write %q as version %d is not on the survivors", msg, v)
		}
	}
	e.waitVersion(t, n)

	// The killed member comes back and catches up: every member holds the same.
	c.start(t, leader)
	if got := sameHistory(t, c.members); got != n {
		t.Fatalf("after the killed member's return: %d versions, want %d", got, n)
	}
}

// TestClusterMinorityRefusesWrites isolates one member from the other two with real
// processes and no firewall: it is killed while the majority takes writes, then the
// majority is frozen (SIGSTOP) and it is started again — alone and behind, as on the
// wrong side of a partition. It refuses writes with an error saying there is no leader, and keeps
// serving its edge the last state it applied. When everyone runs again it catches up.
// The whole cluster is then restarted (SIGTERM) and keeps its state.
func TestClusterMinorityRefusesWrites(t *testing.T) {
	c, env := startBaseCluster(t)
	leader := c.leader(t)
	lone := c.others(leader)[1]
	e := startCachedEdge(t, lone.grpcAddr, "e-lone", t.TempDir())
	e.waitVersion(t, 1)
	signal := func(ms []*cpMember, sig syscall.Signal) {
		for _, m := range ms {
			if err := m.p.cmd.Process.Signal(sig); err != nil {
				t.Fatal(err)
			}
		}
	}
	var majority []*cpMember
	for _, m := range c.members {
		if m != lone {
			majority = append(majority, m)
		}
	}
	t.Cleanup(func() {
		for _, m := range majority {
			_ = m.p.cmd.Process.Signal(syscall.SIGCONT)
		}
	})

	// The lone member falls behind: killed while the majority takes writes (a
	// stopped process would still find them in its socket buffers when resumed).
	if err := lone.p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-lone.p.done
	var servers []string
	for _, m := range majority {
		servers = append(servers, m.grpcAddr)
	}
	for i := range 5 {
		if code, _, stderr := berryctl(t, env, "--server", strings.Join(servers, ","), "--message", fmt.Sprint("while away ", i), "rollback", "1"); code != 0 {
			t.Fatalf("write with the lone member away: %s", stderr)
		}
	}
	// Now it comes back alone: the majority is frozen, as behind a partition.
	signal(majority, syscall.SIGSTOP)
	c.start(t, lone)
	eventually(t, "the lone member sees no leader", func() error {
		st, err := lone.status()
		if err != nil {
			return err
		}
		if st.GetLeaderId() != "" {
			return fmt.Errorf("still sees leader %s", st.GetLeaderId())
		}
		return nil
	})
	code, _, stderr := berryctl(t, env, "--server", lone.grpcAddr, "--timeout", "5s", "rollback", "1")
	if code == 0 || !strings.Contains(stderr, "no leader") {
		t.Fatalf("a write to the lone member: exit %d, %q; want a refusal saying there is no leader", code, stderr)
	}
	if r := chat(t, e.url, userToken, `{"model":"chat","messages":[{"role":"user","content":"hi"}]}`); r.status != http.StatusOK {
		t.Fatalf("the lone member's edge: %d %s", r.status, r.body)
	}
	if v, err := e.configVersion(); err != nil || v != 1 {
		t.Fatalf("the lone member's edge serves %d (%v), want 1", v, err)
	}
	// Healed: it catches up, and its edge gets the versions it missed.
	signal(majority, syscall.SIGCONT)
	n := sameHistory(t, c.members)
	if n != 6 {
		t.Fatalf("%d versions after healing, want 6", n)
	}
	e.waitVersion(t, n)

	// Restart the whole cluster: state intact.
	lineage := func(m *cpMember) string {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		r, err := m.admin.GetServerInfo(ctx, &berryv1.GetServerInfoRequest{})
		if err != nil {
			t.Fatal(err)
		}
		return r.GetLineage()
	}
	before := lineage(c.members[0])
	for _, m := range c.members {
		m.p.stop(t)
	}
	for _, m := range c.members {
		c.start(t, m)
	}
	c.leader(t)
	if got := sameHistory(t, c.members); got != n {
		t.Fatalf("after a full restart: %d versions, want %d", got, n)
	}
	for _, m := range c.members {
		if l := lineage(m); l != before {
			t.Fatalf("%s lineage %s after the restart, want %s", m.id, l, before)
		}
	}
	// The first writes may meet an election settling: a refused write was not made.
	eventually(t, "a write after the restart", func() error {
		if code, _, stderr := berryctl(t, env, "--server", c.servers(), "rollback", "1"); code != 0 {
			return errors.New(stderr)
		}
		return nil
	})
	e.waitVersion(t, n+1)
}

// TestClusterWriteLatency measures config write latency through the admin API,
// one node against a three-member cluster on loopback, and logs p50 and p99 (no
// assertion on speed). BERRY_CLUSTER_WRITES sets the number of writes (default 200).
func TestClusterWriteLatency(t *testing.T) {
	writes := 200
	if s := os.Getenv("BERRY_CLUSTER_WRITES"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n <= 0 {
			t.Fatalf("BERRY_CLUSTER_WRITES=%q: want a positive number", s)
		}
		writes = n
	}
	measure := func(admin berryv1.AdminServiceClient) (p50, p99 time.Duration) {
		ds := make([]time.Duration, 0, writes)
		for i := range writes {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			start := time.Now()
			_, err := admin.UpdateSettings(ctx, &berryv1.UpdateSettingsRequest{Settings: &berryv1.Settings{MaxRetries: uint32(i%5 + 1)}})
			ds = append(ds, time.Since(start))
			cancel()
			if err != nil {
				t.Fatalf("write %d: %v", i, err)
			}
		}
		slices.Sort(ds)
		return ds[len(ds)/2], ds[len(ds)*99/100]
	}
	one := startSecuredCP(t, filepath.Join(t.TempDir(), "berry.db"), "")
	p50, p99 := measure(one.admin)
	t.Logf("one node: %d writes, p50 %v, p99 %v", writes, p50.Round(10*time.Microsecond), p99.Round(10*time.Microsecond))
	c := startCPCluster(t, 3)
	l := c.leader(t)
	p50, p99 = measure(l.admin)
	t.Logf("3-member cluster, sent to the leader: %d writes, p50 %v, p99 %v", writes, p50.Round(10*time.Microsecond), p99.Round(10*time.Microsecond))
	for _, m := range c.members {
		if m != l {
			p50, p99 = measure(m.admin)
			t.Logf("3-member cluster, sent to a follower (forwarded): %d writes, p50 %v, p99 %v", writes, p50.Round(10*time.Microsecond), p99.Round(10*time.Microsecond))
			break
		}
	}
}

func (m *cpMember) lineage(t *testing.T) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	r, err := m.admin.GetServerInfo(ctx, &berryv1.GetServerInfoRequest{})
	if err != nil {
		t.Fatal(err)
	}
	return r.GetLineage()
}

// TestClusterUpgradeInPlace turns a one-node control plane's data file into a
// one-node cluster, adds two members with berryctl (one add sent to a follower), and
// checks that nothing was lost and the lineage is kept (edges keep their snapshot).
// Usage an edge reports to a follower reaches the ledger on every member. Then a
// backup taken from a member is restored as a new cluster.
func TestClusterUpgradeInPlace(t *testing.T) {
	sim := startSim(t, upstreamsim.Options{Name: "sim-a", APIKey: "sk-sim-a-secret"})
	env := []string{"BERRY_TOKEN=" + adminToken}
	n1 := &cpMember{id: "n1", grpcAddr: freeAddr(t), raftAddr: freeAddr(t), dir: t.TempDir()}
	single := startSecuredCP(t, filepath.Join(n1.dir, "berry.db"), n1.grpcAddr)
	base := writeFile(t, filepath.Join(t.TempDir(), "base.toml"), configTOML(sim.URL(), sim.URL(), "a"))
	if code, _, stderr := berryctl(t, env, "--server", single.addr, "import", base); code != 0 {
		t.Fatalf("import: %s", stderr)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	info, err := single.admin.GetServerInfo(ctx, &berryv1.GetServerInfoRequest{})
	cancel()
	if err != nil {
		t.Fatal(err)
	}
	single.stop(t)

	c := &cpCluster{secret: writeFile(t, filepath.Join(t.TempDir(), "raft-secret"), "e2e-cluster-secret-0123456789abcdef\n"),
		peers: "n1=" + n1.raftAddr, members: []*cpMember{n1}}
	c.start(t, n1)
	c.leader(t)
	if l := n1.lineage(t); l != info.GetLineage() {
		t.Fatalf("lineage %s after the upgrade, want %s (kept)", l, info.GetLineage())
	}
	n2 := &cpMember{id: "n2", grpcAddr: freeAddr(t), raftAddr: freeAddr(t), dir: t.TempDir(), join: true}
	n3 := &cpMember{id: "n3", grpcAddr: freeAddr(t), raftAddr: freeAddr(t), dir: t.TempDir(), join: true}
	for _, m := range []*cpMember{n2, n3} {
		c.members = append(c.members, m)
		c.start(t, m)
	}
	if code, out, stderr := berryctl(t, env, "--server", n1.grpcAddr, "cluster", "add", "n2", n2.raftAddr); code != 0 {
		t.Fatalf("cluster add n2: %s %s", out, stderr)
	}
	eventually(t, "n2 follows", func() error {
		st, err := n2.status()
		if err == nil && st.GetLeaderId() == "" {
			err = errors.New("no leader yet")
		}
		return err
	})
	// Sent to a follower: forwarded to the leader.
	if code, out, stderr := berryctl(t, env, "--server", n2.grpcAddr, "cluster", "add", "n3", n3.raftAddr); code != 0 {
		t.Fatalf("cluster add n3 via n2: %s %s", out, stderr)
	}
	if n := sameHistory(t, c.members); n != 1 {
		t.Fatalf("%d versions after the upgrade, want 1", n)
	}
	for _, m := range c.members {
		if l := m.lineage(t); l != info.GetLineage() {
			t.Fatalf("%s lineage %s, want %s", m.id, l, info.GetLineage())
		}
	}
	// n3 learns the membership entries after the snapshot it started from.
	eventually(t, "cluster status from n3 names every member", func() error {
		code, out, stderr := berryctl(t, env, "--server", n3.grpcAddr, "cluster", "status")
		if code != 0 || !strings.Contains(out, "n1") || !strings.Contains(out, "n2") || !strings.Contains(out, "n3") || !strings.Contains(out, "leader") {
			return fmt.Errorf("%q %s", out, stderr)
		}
		return nil
	})

	// Usage reported to a follower reaches the ledger of every member.
	var follower *cpMember
	for _, m := range c.members {
		if st, err := m.status(); err == nil && st.GetState() == "Follower" {
			follower = m
			break
		}
	}
	e := startCachedEdge(t, follower.grpcAddr, "e-usage", t.TempDir())
	e.waitVersion(t, 1)
	for range 3 {
		if r := chat(t, e.url, userToken, `{"model":"chat","messages":[{"role":"user","content":"hi"}]}`); r.status != http.StatusOK {
			t.Fatalf("chat: %d %s", r.status, r.body)
		}
	}
	for _, m := range c.members {
		eventually(t, "the usage on "+m.id, func() error {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			r, err := m.admin.GetUsage(ctx, &berryv1.GetUsageRequest{})
			if err != nil {
				return err
			}
			var n uint64
			for _, row := range r.GetRows() {
				n += row.GetRequests()
			}
			if n != 3 {
				return fmt.Errorf("%d requests in the ledger, want 3", n)
			}
			return nil
		})
	}

	// Backup from a member, one more write, then restore the backup as a new cluster.
	backup := filepath.Join(t.TempDir(), "backup.db")
	run := func(args ...string) {
		t.Helper()
		out, err := exec.Command(filepath.Join(binDir, "berry-controlplane"), args...).CombinedOutput()
		if err != nil {
			t.Fatalf("berry-controlplane %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	run("backup", "--out", backup, "--server", n3.grpcAddr, "--token", adminToken)
	if code, _, stderr := berryctl(t, env, "--server", c.servers(), "rollback", "1"); code != 0 {
		t.Fatalf("write: %s", stderr)
	}
	e.stop(t)
	for _, m := range c.members {
		m.p.stop(t)
	}
	run("restore", "--from", backup, "--data", filepath.Join(n1.dir, "berry.db"))
	if err := os.RemoveAll(filepath.Join(n1.dir, "berry.db.raft")); err != nil {
		t.Fatal(err)
	}
	for _, m := range []*cpMember{n2, n3} {
		m.dir = t.TempDir()
	}
	c.start(t, n1)
	c.leader(t)
	for _, m := range []*cpMember{n2, n3} {
		c.start(t, m)
		if code, out, stderr := berryctl(t, env, "--server", n1.grpcAddr, "cluster", "add", m.id, m.raftAddr); code != 0 {
			t.Fatalf("cluster add %s: %s %s", m.id, out, stderr)
		}
	}
	if n := sameHistory(t, c.members); n != 1 {
		t.Fatalf("%d versions after the restore, want the backup's 1", n)
	}
	restored := n1.lineage(t)
	if restored == info.GetLineage() {
		t.Fatal("the restored cluster kept the old lineage; edges would not take its versions")
	}
	for _, m := range c.members {
		if l := m.lineage(t); l != restored {
			t.Fatalf("%s lineage %s, want the restored cluster's %s", m.id, l, restored)
		}
	}
}
