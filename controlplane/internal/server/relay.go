package server

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/berry-gateway/berry/controlplane/internal/cache"
	berryv1 "github.com/berry-gateway/berry/pkg/api/berry/v1"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Fleet scores and quota credit are computed by one member, the leader, from what
// every edge observes: a follower relays its edges' streams and observation batches
// to the leader on one ClusterService.Relay stream, and gets back the fleet scores,
// which it publishes to its own edges, and each of its edges' quota grants, which go
// down that edge's stream. The leader treats a relayed stream as one of its own:
// the score service merges its observations and may give it probes, the quota engine
// counts its reports and grants it credit. Usage ledger rows are not relayed: the
// follower keeps writing them through ForwardUsage, which retries what fails.

const (
	// maxRelayBacklog bounds the batches a follower keeps while it has no leader to
	// relay them to (an election takes a second or two; a lost majority longer).
	// The oldest are dropped first: their quota reports are lost (counted in
	// berry_controlplane_relay_batches_dropped_total), their usage is not (it is
	// written apart).
	maxRelayBacklog = 4096
	// relayCheck is how often both ends look whether the leader they relay to (or
	// are) still leads: a leader cut off from the others may not notice its
	// connections are dead.
	relayCheck = 500 * time.Millisecond
	// relayRetryMin and relayRetryMax bound the wait before a follower opens its
	// relay again.
	relayRetryMin = 100 * time.Millisecond
	relayRetryMax = 2 * time.Second
)

// relayEvent is one thing to tell the leader about an edge stream open on this
// member: opened, a batch (b set) or closed.
type relayEvent struct {
	stream uint64
	edge   string
	b      *berryv1.ObservationBatch // a batch, usage left out
	closed bool
}

// relay is a follower's side of the Relay stream: what its edges' streams tell the
// leader, and what the leader sends back to them.
type relay struct {
	c      *clusterState
	q      *QuotaService
	scores *cache.Scores // where the leader's scores are published
	log    *slog.Logger

	mu      sync.Mutex
	open    map[uint64]string // every edge stream open on this member → its edge
	queue   []relayEvent      // not yet sent on the current relay stream
	batches int               // how many of queue's events are batches
	wake    chan struct{}     // capacity 1: queue has something

	connected atomic.Bool
	dropped   atomic.Uint64 // batches dropped from a full backlog, or left when this member became the leader
}

func newRelay(c *clusterState, q *QuotaService, scores *cache.Scores, log *slog.Logger) *relay {
	return &relay{c: c, q: q, scores: scores, log: log, open: map[uint64]string{}, wake: make(chan struct{}, 1)}
}

// opened records an edge stream opening on this member.
func (r *relay) opened(stream uint64, edge string) {
	r.mu.Lock()
	r.open[stream] = edge
	r.push(relayEvent{stream: stream, edge: edge})
	r.mu.Unlock()
}

// closed records an edge stream's end.
func (r *relay) closed(stream uint64, edge string) {
	r.mu.Lock()
	delete(r.open, stream)
	r.push(relayEvent{stream: stream, edge: edge, closed: true})
	r.mu.Unlock()
}

// batch queues an observation batch for the leader. Only a follower relays: what an
// edge of the leader reports goes to its engine directly.
func (r *relay) batch(stream uint64, edge string, b *berryv1.ObservationBatch) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.batches >= maxRelayBacklog {
		for i, e := range r.queue {
			if e.b != nil {
				r.queue = append(r.queue[:i], r.queue[i+1:]...)
				r.batches--
				r.dropped.Add(1)
				break
			}
		}
	}
	r.batches++
	r.push(relayEvent{stream: stream, edge: edge, b: b})
}

// push appends e to the queue and wakes the sender; r.mu is held.
func (r *relay) push(e relayEvent) {
	r.queue = append(r.queue, e)
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// take returns the queued events.
func (r *relay) take() []relayEvent {
	r.mu.Lock()
	defer r.mu.Unlock()
	q := r.queue
	r.queue, r.batches = nil, 0
	return q
}

// announce returns what a new relay stream starts with: every edge stream open on
// this member, then the queued events, with each batch's stream announced before it
// (a stream may have closed while there was no leader: its batches still count).
func (r *relay) announce() []*berryv1.RelayRequest {
	r.mu.Lock()
	defer r.mu.Unlock()
	q := r.queue
	r.queue, r.batches = nil, 0
	queuedOpen := map[uint64]bool{}
	for _, e := range q {
		if e.b == nil && !e.closed {
			queuedOpen[e.stream] = true
		}
	}
	var out []*berryv1.RelayRequest
	told := map[uint64]bool{}
	for id, edge := range r.open {
		if !queuedOpen[id] {
			told[id] = true
			out = append(out, relayOpened(id, edge))
		}
	}
	for _, e := range q {
		switch {
		case e.b == nil && !e.closed:
			told[e.stream] = true
			out = append(out, relayOpened(e.stream, e.edge))
		case e.closed:
			if told[e.stream] {
				out = append(out, relayClosed(e.stream))
			}
		default:
			if !told[e.stream] {
				told[e.stream] = true
				// Announced on the lost stream: its closing, if it closed, is queued
				// after its batches.
				out = append(out, relayOpened(e.stream, e.edge))
			}
			out = append(out, relayBatch(e.stream, e.b))
		}
	}
	return out
}

func relayOpened(id uint64, edge string) *berryv1.RelayRequest {
	return &berryv1.RelayRequest{Kind: &berryv1.RelayRequest_Opened{Opened: &berryv1.RelayedStream{Id: id, EdgeId: edge}}}
}

func relayClosed(id uint64) *berryv1.RelayRequest {
	return &berryv1.RelayRequest{Kind: &berryv1.RelayRequest_Closed{Closed: id}}
}

func relayBatch(id uint64, b *berryv1.ObservationBatch) *berryv1.RelayRequest {
	return &berryv1.RelayRequest{Kind: &berryv1.RelayRequest_Batch{Batch: &berryv1.RelayedBatch{Stream: id, Batch: b}}}
}

func (e relayEvent) request() *berryv1.RelayRequest {
	switch {
	case e.closed:
		return relayClosed(e.stream)
	case e.b != nil:
		return relayBatch(e.stream, e.b)
	}
	return relayOpened(e.stream, e.edge)
}

// run keeps a relay stream open to the leader while this member follows, until ctx
// ends.
func (r *relay) run(ctx context.Context) {
	wait := relayRetryMin
	for ctx.Err() == nil {
		if r.c.replica.Leading() {
			// Batches queued while following were not counted by any engine; this
			// member's new engine starts from the store and the edges' next reports.
			if n := r.dropLeftBatches(); n > 0 {
				r.log.Warn("this member leads now: batches queued for the previous leader are dropped; their quota reports are lost (their usage is written)", "batches", n)
			}
			sleep(ctx, relayCheck)
			wait = relayRetryMin
			continue
		}
		start := time.Now()
		err := r.session(ctx)
		r.connected.Store(false)
		if ctx.Err() != nil {
			return
		}
		if time.Since(start) > relayRetryMax {
			wait = relayRetryMin // it worked for a while: this is a new failure
		}
		r.log.Debug("relay to the leader ended; retrying", "err", err, "in", wait)
		sleep(ctx, wait)
		wait = min(2*wait, relayRetryMax)
	}
}

// dropLeftBatches drops the queued batches and returns how many there were.
func (r *relay) dropLeftBatches() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := r.batches
	r.queue, r.batches = nil, 0 // the open streams are announced again from r.open
	r.dropped.Add(uint64(n))
	return n
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}

// session runs one relay stream to the current leader, until it fails, the leader
// changes, or this member leads.
func (r *relay) session(ctx context.Context) error {
	cc, _, err := r.c.leaderConn()
	if err != nil {
		return err
	}
	leaderID, _ := r.c.replica.Leader()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := berryv1.NewClusterServiceClient(cc).Relay(r.c.memberContext(ctx))
	if err != nil {
		return err
	}
	if err := stream.Send(&berryv1.RelayRequest{Kind: &berryv1.RelayRequest_Hello{Hello: &berryv1.RelayHello{MemberId: r.c.replica.ID()}}}); err != nil {
		return err
	}
	for _, m := range r.announce() {
		if err := stream.Send(m); err != nil {
			return err
		}
	}
	recvErr := make(chan error, 1)
	go func() { recvErr <- r.receive(stream) }()
	r.connected.Store(true)
	r.log.Info("relaying edges' observations to the leader, and its scores and grants to them", "leader", leaderID)
	check := time.NewTicker(relayCheck)
	defer check.Stop()
	for {
		select {
		case <-r.wake:
			for _, e := range r.take() {
				if err := stream.Send(e.request()); err != nil {
					return err
				}
			}
		case err := <-recvErr:
			return err
		case <-check.C:
			if id, _ := r.c.replica.Leader(); id != leaderID || r.c.replica.Leading() {
				return errors.New("the leader changed")
			}
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// receive publishes the leader's scores and hands each grant to its edge's stream.
func (r *relay) receive(stream grpc.BidiStreamingClient[berryv1.RelayRequest, berryv1.RelayResponse]) error {
	for {
		m, err := stream.Recv()
		if err != nil {
			return err
		}
		switch k := m.GetKind().(type) {
		case *berryv1.RelayResponse_Scores:
			r.scores.Set(k.Scores)
		case *berryv1.RelayResponse_Grants:
			r.q.deliver(k.Grants.GetEdgeId(), k.Grants.GetGrants())
		}
	}
}

// relayedStream is, on the leader, an edge stream a follower relays.
type relayedStream struct {
	edge   string
	quota  QuotaStream
	closed func() // the score service's
	done   chan struct{}
}

// Relay implements berryv1.ClusterServiceServer: the leader serves a follower's
// edges as its own while it leads.
func (c *ClusterService) Relay(stream grpc.BidiStreamingServer[berryv1.RelayRequest, berryv1.RelayResponse]) error {
	if c.cluster == nil {
		return errOneNode
	}
	if !c.cluster.replica.Leading() {
		return toStatus(c.cluster.notLeader(stream.Context()))
	}
	first, err := stream.Recv()
	if err != nil {
		return err
	}
	member := first.GetHello().GetMemberId()
	if member == "" {
		return status.Error(codes.InvalidArgument, "the first message on a Relay stream must be a hello with the member's id")
	}
	log := c.log.With("member", member)
	ctx := stream.Context()
	grants := make(chan *berryv1.RelayResponse, 64)
	recvErr := make(chan error, 1)
	go func() { recvErr <- c.relayReceive(ctx, stream, grants, log) }()
	log.Debug("member relays its edges")

	check := time.NewTicker(relayCheck)
	defer check.Stop()
	var sent *berryv1.FleetScores
	for {
		scores, changed := c.scores.Watch()
		if scores != nil && scores != sent {
			if err := stream.Send(&berryv1.RelayResponse{Kind: &berryv1.RelayResponse_Scores{Scores: scores}}); err != nil {
				return err
			}
			sent = scores
		}
		select {
		case <-changed:
		case g := <-grants:
			if err := stream.Send(g); err != nil {
				return err
			}
		case <-check.C:
			if !c.cluster.replica.Leading() {
				return toStatus(c.cluster.notLeader(ctx))
			}
		case err := <-recvErr:
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// relayReceive takes a follower's events until its stream ends, then closes the
// streams it relayed.
func (c *ClusterService) relayReceive(ctx context.Context, stream grpc.BidiStreamingServer[berryv1.RelayRequest, berryv1.RelayResponse],
	grants chan<- *berryv1.RelayResponse, log *slog.Logger) error {
	streams := map[uint64]*relayedStream{}
	c.relayed.Add(1)
	defer func() {
		c.relayed.Add(-1)
		for _, s := range streams {
			s.end()
			c.relayedStreams.Add(-1)
		}
	}()
	for {
		m, err := stream.Recv()
		if err != nil {
			return err
		}
		switch k := m.GetKind().(type) {
		case *berryv1.RelayRequest_Opened:
			id, edge := k.Opened.GetId(), k.Opened.GetEdgeId()
			if streams[id] != nil || edge == "" {
				continue
			}
			s := &relayedStream{edge: edge, quota: c.quota.openStream(edge, true), done: make(chan struct{})}
			if c.callbacks != nil {
				s.closed = c.callbacks.StreamOpened(edge)
			}
			streams[id] = s
			c.relayedStreams.Add(1)
			go s.pump(ctx, grants)
		case *berryv1.RelayRequest_Closed:
			if s := streams[k.Closed]; s != nil {
				s.end()
				delete(streams, k.Closed)
				c.relayedStreams.Add(-1)
			}
		case *berryv1.RelayRequest_Batch:
			s := streams[k.Batch.GetStream()]
			if s == nil {
				log.Warn("relayed batch of a stream not announced; ignored", "stream", k.Batch.GetStream())
				continue
			}
			b := k.Batch.GetBatch()
			if c.callbacks != nil {
				c.callbacks.Observed(s.edge, b)
			}
			s.quota.Observed(b)
		}
	}
}

// pump sends the grants the quota service has for the relayed stream's edge.
func (s *relayedStream) pump(ctx context.Context, out chan<- *berryv1.RelayResponse) {
	for {
		select {
		case <-s.quota.Ready():
			g := s.quota.Take()
			if g == nil {
				continue
			}
			select {
			case out <- &berryv1.RelayResponse{Kind: &berryv1.RelayResponse_Grants{Grants: &berryv1.RelayedGrants{EdgeId: s.edge, Grants: g}}}:
			case <-s.done:
				return
			case <-ctx.Done():
				return
			}
		case <-s.done:
			return
		case <-ctx.Done():
			return
		}
	}
}

func (s *relayedStream) end() {
	close(s.done)
	s.quota.Close()
	if s.closed != nil {
		s.closed()
	}
}

// Relay metrics.
var (
	descRelayConnected = prometheus.NewDesc("berry_controlplane_relay_connected",
		"1 when this member follows and relays its edges to the leader (fleet scores and quota credit reach them), 0 otherwise.", nil, nil)
	descRelayDropped = prometheus.NewDesc("berry_controlplane_relay_batches_dropped_total",
		"Observation batches a follower dropped instead of relaying (its backlog was full while there was no leader, or it became the leader): their quota reports are lost, their usage is not.", nil, nil)
	descRelayedStreams = prometheus.NewDesc("berry_controlplane_relayed_edge_streams",
		"Edge streams followers relay to this member, the leader.", nil, nil)
	descRelayMembers = prometheus.NewDesc("berry_controlplane_relaying_members",
		"Followers with a relay stream open to this member, the leader.", nil, nil)
)

// relayCollector exposes both ends of the relay at scrape time.
type relayCollector struct {
	r *relay // nil on one node
	c *ClusterService
}

// Describe implements prometheus.Collector.
func (c relayCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descRelayConnected, descRelayDropped, descRelayedStreams, descRelayMembers} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c relayCollector) Collect(ch chan<- prometheus.Metric) {
	if c.r == nil {
		return
	}
	connected := 0.0
	if c.r.connected.Load() {
		connected = 1
	}
	ch <- prometheus.MustNewConstMetric(descRelayConnected, prometheus.GaugeValue, connected)
	ch <- prometheus.MustNewConstMetric(descRelayDropped, prometheus.CounterValue, float64(c.r.dropped.Load()))
	ch <- prometheus.MustNewConstMetric(descRelayedStreams, prometheus.GaugeValue, float64(c.c.relayedStreams.Load()))
	ch <- prometheus.MustNewConstMetric(descRelayMembers, prometheus.GaugeValue, float64(c.c.relayed.Load()))
}
