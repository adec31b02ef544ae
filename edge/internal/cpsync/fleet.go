package cpsync

import (
	"context"
	crand "crypto/rand"
	"encoding/hex"
	"sync"
	"time"

	"github.com/berry-gateway/berry/edge/internal/backends"
	berryv1 "github.com/berry-gateway/berry/pkg/api/berry/v1"
)

// Fleet is the edge's side of fleet-wide scores (serving.Runtime): it yields the
// observations to report and takes what the control plane pushes.
type Fleet interface {
	Observations(now time.Time) []backends.Observation
	// ApplyFleet installs the fleet's scores and probe owners, valid until expires;
	// self is this edge's id.
	ApplyFleet(scores []backends.Score, probeOwners map[string]string, self string, now, expires time.Time)
	// ClearFleet drops them: local estimates, every provider probed locally.
	ClearFleet()
	// AwaitProbeAssignment: the stream is up; probe nothing until scores bring probe
	// assignments or until passes.
	AwaitProbeAssignment(until time.Time)
}

// DefaultReportInterval is how often an edge reports observations by default.
const DefaultReportInterval = time.Second

func (c *Client) reportInterval() time.Duration {
	if c.ReportInterval > 0 {
		return c.ReportInterval
	}
	return DefaultReportInterval
}

// scoreTTL is how long pushed scores stay valid: a few missed pushes are tolerated,
// a control plane that went quiet is not followed for long.
func (c *Client) scoreTTL() time.Duration {
	if c.ScoreTTL > 0 {
		return c.ScoreTTL
	}
	return 5 * c.reportInterval()
}

// applyScores installs scores unless they are older than the last ones applied from
// the same control-plane instance (a new instance starts its epochs over).
func (c *Client) applyScores(s *berryv1.FleetScores) bool {
	if c.Fleet == nil {
		return false
	}
	c.scoreMu.Lock()
	defer c.scoreMu.Unlock()
	if s.GetInstance() == c.scoreInstance && s.GetEpoch() <= c.scoreEpoch {
		return false
	}
	c.scoreInstance, c.scoreEpoch = s.GetInstance(), s.GetEpoch()
	ttl := c.scoreTTL()
	if v := s.GetValidSeconds(); v > 0 && c.ScoreTTL <= 0 {
		// The control plane knows its push cadence; the edge's default guesses it.
		ttl = time.Duration(v * float64(time.Second))
	}
	now := time.Now()
	c.Fleet.ApplyFleet(scoresFromWire(s), s.GetProbeOwners(), c.EdgeID, now, now.Add(ttl))
	return true
}

// ScoreEpoch returns the instance and epoch of the last scores applied.
func (c *Client) ScoreEpoch() (instance string, epoch uint64) {
	c.scoreMu.Lock()
	defer c.scoreMu.Unlock()
	return c.scoreInstance, c.scoreEpoch
}

// instance names this edge process in its batches: with a batch's seq, it lets the
// control plane count each batch once.
var instance = func() string {
	var b [8]byte
	_, _ = crand.Read(b[:])
	return hex.EncodeToString(b[:])
}()

// report takes observations every interval and hands them to send without ever
// waiting on the stream: while the previous batch is still being sent, the new one is
// merged into what is pending (counts add up, estimates are replaced) and the merge is
// counted in MergedBatches.
func (c *Client) report(ctx context.Context, send func(*berryv1.ObservationBatch) error) error {
	out := make(chan *berryv1.ObservationBatch, 1)
	errc := make(chan error, 1)
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case b := <-out:
				if err := send(b); err != nil {
					errc <- err
					return
				}
			}
		}
	}()
	t := time.NewTicker(c.reportInterval())
	defer t.Stop()
	var pending *berryv1.ObservationBatch
	var seq uint64
	defer func() {
		// Usage not sent goes in the next session's first batch; only what was on
		// the wire when the stream broke can be lost.
		if pending != nil && c.Metering != nil {
			c.Metering.Meter().Merge(pending.GetUsage())
			c.Metering.Quota().Unreport(pending.GetQuota())
		}
	}()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case err := <-errc:
			return err
		case now := <-t.C:
			obs := observationsToWire(c.Fleet.Observations(now))
			if pending == nil {
				pending = &berryv1.ObservationBatch{Backends: obs}
			} else {
				pending.Backends = mergeObservations(pending.Backends, obs)
				pending.MergedBatches++
				c.mergedBatches.Add(1)
			}
			if m := c.Metering; m != nil {
				pending.Usage = append(pending.Usage, m.Meter().Drain()...)
				pending.Quota = append(pending.Quota, m.Quota().Report(now)...)
				pending.GrantInstance, pending.AppliedGrantSeq = m.Quota().Applied()
			}
			seq++
			pending.Seq, pending.Instance = seq, instance
			select {
			case out <- pending:
				pending = nil
			default: // the sender is still busy with the previous batch
			}
		}
	}
}

// lockedSend serializes Sends on one stream (ACKs and batches come from two goroutines).
type lockedSend struct {
	mu   sync.Mutex
	send func(*berryv1.SyncRequest) error
}

func (l *lockedSend) Send(m *berryv1.SyncRequest) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.send(m)
}
