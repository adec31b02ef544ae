package store

import (
	"bytes"
	"cmp"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	berryv1 "github.com/berry-gateway/berry/pkg/api/berry/v1"
	bolt "go.etcd.io/bbolt"
	"google.golang.org/protobuf/proto"
)

// The usage ledger and the quota counters live in the same file as the config, so a
// backup holds them and a replicated control plane would replicate them. They are
// written in batches, one transaction per flush, never per request.
var (
	// bucketUsage holds the ledger: hour × key × model × provider × upstream model →
	// the summed counters (a UsageRecord with only its counters set).
	bucketUsage = []byte("usage")
	// bucketQuota holds what the fleet consumed of each key's limits: dimension ×
	// window × key → consumed (8 bytes, big-endian two's complement).
	bucketQuota = []byte("quota")
	// bucketQuotaEdges holds the edges the quota engine saw connected or reporting in
	// the current day: edge id → that day (unix seconds / 86400, 8 bytes big-endian).
	// A restarted control plane grants nothing until they have reported (or a cap has
	// passed): they may hold credit, and what they admitted while it was down is not in
	// the quota counters. Each flush that changes the set replaces it whole.
	bucketQuotaEdges = []byte("quota_edges")
)

// UsageKey is one ledger row: an hour (unix seconds / 3600, by the control plane's
// clock when it received the usage), a key (user id), a model id and a backend.
type UsageKey struct {
	Hour                                int64
	Key, Model, Provider, UpstreamModel string
}

// UsageCounters are a ledger row's sums.
type UsageCounters struct {
	Requests, InputTokens, OutputTokens, CachedTokens, ReasoningTokens, CostMicroUSD, Estimated uint64
}

// Add adds o to c.
func (c *UsageCounters) Add(o UsageCounters) {
	c.Requests += o.Requests
	c.InputTokens += o.InputTokens
	c.OutputTokens += o.OutputTokens
	c.CachedTokens += o.CachedTokens
	c.ReasoningTokens += o.ReasoningTokens
	c.CostMicroUSD += o.CostMicroUSD
	c.Estimated += o.Estimated
}

// CountersOf returns a usage record's counters.
func CountersOf(r *berryv1.UsageRecord) UsageCounters {
	return UsageCounters{
		Requests: r.GetRequests(), InputTokens: r.GetInputTokens(), OutputTokens: r.GetOutputTokens(),
		CachedTokens: r.GetCachedTokens(), ReasoningTokens: r.GetReasoningTokens(),
		CostMicroUSD: r.GetCostMicroUsd(), Estimated: r.GetEstimated(),
	}
}

// QuotaCounter is what the fleet consumed of one key's limit in one window.
type QuotaCounter struct {
	Key      string
	Dim      berryv1.QuotaDimension
	Window   int64
	Consumed int64
}

// QuotaEdge is an edge the quota engine saw connected or reporting on Day (unix
// seconds / 86400, by the control plane's clock).
type QuotaEdge struct {
	ID  string
	Day int64
}

// UsageBatch is one flush: ledger rows to add to, quota counters to set or to delete
// (their windows are over), and, when ReplaceEdges is set, the edges that replace the
// ones stored (QuotaEdges; none is a valid set).
type UsageBatch struct {
	Usage        map[UsageKey]UsageCounters
	QuotaPut     []QuotaCounter
	QuotaDelete  []QuotaCounter
	QuotaEdges   []QuotaEdge
	ReplaceEdges bool
	// Index is the log entry carrying the batch on a replicated control plane (0:
	// none): a batch whose entry the file already holds is skipped.
	Index uint64
}

// Empty reports whether the batch writes nothing.
func (b *UsageBatch) Empty() bool {
	return len(b.Usage) == 0 && len(b.QuotaPut) == 0 && len(b.QuotaDelete) == 0 && !b.ReplaceEdges
}

// WriteUsage writes one batch in one transaction, fsynced before it returns: the
// ledger rows' counters are added to what the rows hold, the quota counters set, and
// the quota edges replaced when the batch says so. An edge id that cannot be a key
// (empty, or longer than bbolt allows) is skipped.
func (s *Store) WriteUsage(ctx context.Context, b *UsageBatch) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if b.Empty() && b.Index == 0 {
		return nil
	}
	type row struct {
		k []byte
		c UsageCounters
	}
	rows := make([]row, 0, len(b.Usage))
	for k, c := range b.Usage {
		rows = append(rows, row{usageKey(k), c})
	}
	// In key order bbolt's pages fill and split least.
	slices.SortFunc(rows, func(a, b row) int { return bytes.Compare(a.k, b.k) })
	return s.db.Update(func(tx *bolt.Tx) error {
		if fresh, err := markApplied(tx, b.Index); err != nil || !fresh {
			return err
		}
		ub, err := tx.CreateBucketIfNotExists(bucketUsage)
		if err != nil {
			return err
		}
		qb, err := tx.CreateBucketIfNotExists(bucketQuota)
		if err != nil {
			return err
		}
		for _, r := range rows {
			c := r.c
			if old := ub.Get(r.k); old != nil {
				prev, err := decodeCounters(old)
				if err != nil {
					return fmt.Errorf("usage row: corrupt record: %w", err)
				}
				c.Add(prev)
			}
			v, err := encodeCounters(c)
			if err != nil {
				return err
			}
			if err := ub.Put(r.k, v); err != nil {
				return err
			}
		}
		for _, q := range b.QuotaPut {
			var v [8]byte
			binary.BigEndian.PutUint64(v[:], uint64(q.Consumed))
			if err := qb.Put(quotaKey(q.Dim, q.Window, q.Key), v[:]); err != nil {
				return err
			}
		}
		for _, q := range b.QuotaDelete {
			if err := qb.Delete(quotaKey(q.Dim, q.Window, q.Key)); err != nil {
				return err
			}
		}
		if b.ReplaceEdges {
			return replaceQuotaEdges(tx, b.QuotaEdges)
		}
		return nil
	})
}

func replaceQuotaEdges(tx *bolt.Tx, edges []QuotaEdge) error {
	if tx.Bucket(bucketQuotaEdges) != nil {
		if err := tx.DeleteBucket(bucketQuotaEdges); err != nil {
			return err
		}
	}
	eb, err := tx.CreateBucket(bucketQuotaEdges)
	if err != nil {
		return err
	}
	for _, e := range edges {
		if e.ID == "" || len(e.ID) > bolt.MaxKeySize {
			continue
		}
		var v [8]byte
		binary.BigEndian.PutUint64(v[:], uint64(e.Day))
		if err := eb.Put([]byte(e.ID), v[:]); err != nil {
			return err
		}
	}
	return nil
}

// QuotaEdges returns the quota edges stored for day from on (WriteUsage), sorted by
// id: those a restarted control plane waits for.
func (s *Store) QuotaEdges(ctx context.Context, from int64) ([]QuotaEdge, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	var out []QuotaEdge
	err := s.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketQuotaEdges)
		if b == nil {
			return nil
		}
		return b.ForEach(func(k, v []byte) error {
			if len(v) != 8 {
				return fmt.Errorf("quota edge %q: corrupt record", k)
			}
			if day := int64(binary.BigEndian.Uint64(v)); day >= from {
				out = append(out, QuotaEdge{ID: string(k), Day: day})
			}
			return nil
		})
	})
	return out, err
}

// usageKey encodes a ledger row's key: the hour big-endian (so hours are in order),
// then each string with its length.
func usageKey(k UsageKey) []byte {
	b := make([]byte, 8, 8+4*binary.MaxVarintLen16+len(k.Key)+len(k.Model)+len(k.Provider)+len(k.UpstreamModel))
	binary.BigEndian.PutUint64(b, uint64(k.Hour))
	for _, s := range []string{k.Key, k.Model, k.Provider, k.UpstreamModel} {
		b = binary.AppendUvarint(b, uint64(len(s)))
		b = append(b, s...)
	}
	return b
}

var errBadKey = errors.New("malformed key")

func parseUsageKey(b []byte) (UsageKey, error) {
	if len(b) < 8 {
		return UsageKey{}, errBadKey
	}
	k := UsageKey{Hour: int64(binary.BigEndian.Uint64(b))}
	b = b[8:]
	for _, dst := range []*string{&k.Key, &k.Model, &k.Provider, &k.UpstreamModel} {
		n, m := binary.Uvarint(b)
		if m <= 0 || uint64(len(b)-m) < n {
			return UsageKey{}, errBadKey
		}
		*dst = string(b[m : m+int(n)])
		b = b[m+int(n):]
	}
	return k, nil
}

func encodeCounters(c UsageCounters) ([]byte, error) {
	return proto.MarshalOptions{Deterministic: true}.Marshal(&berryv1.UsageRecord{
		Requests: c.Requests, InputTokens: c.InputTokens, OutputTokens: c.OutputTokens,
		CachedTokens: c.CachedTokens, ReasoningTokens: c.ReasoningTokens,
		CostMicroUsd: c.CostMicroUSD, Estimated: c.Estimated,
	})
}

func decodeCounters(v []byte) (UsageCounters, error) {
	var r berryv1.UsageRecord
	if err := proto.Unmarshal(v, &r); err != nil {
		return UsageCounters{}, err
	}
	return CountersOf(&r), nil
}

// quotaKey encodes a quota counter's key: the dimension, the window big-endian (so
// a dimension's windows are in order), then the key.
func quotaKey(d berryv1.QuotaDimension, window int64, key string) []byte {
	b := make([]byte, 9, 9+len(key))
	b[0] = byte(d)
	binary.BigEndian.PutUint64(b[1:], uint64(window))
	return append(b, key...)
}

// UsageGroup says which columns a usage query groups by; the others are summed over.
type UsageGroup struct {
	Key, Model, Backend, Hour bool
}

// UsageQuery selects and groups ledger rows.
type UsageQuery struct {
	// The hours that overlap [Since, Until).
	Since, Until time.Time
	// Filters; empty matches all.
	Key, Model string
	Group      UsageGroup
}

// UsageRow is one group's sums; the columns not grouped by are empty.
type UsageRow struct {
	Key, Model string
	// Backend is provider/upstream model.
	Backend string
	// Hour is the hour's start (UTC), zero unless grouped by hour.
	Hour time.Time
	UsageCounters
}

// Usage reads the ledger rows of the hours overlapping [q.Since, q.Until) that match
// q's filters, summed per group, sorted by key, model, backend and hour.
func (s *Store) Usage(ctx context.Context, q UsageQuery) ([]UsageRow, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	from := floorHour(q.Since.Unix())
	to := floorHour(q.Until.Unix() + 3599) // exclusive: the first hour starting at or after Until
	groups := map[UsageRow]*UsageCounters{}
	err := s.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketUsage)
		if b == nil {
			return nil
		}
		var start [8]byte
		binary.BigEndian.PutUint64(start[:], uint64(max(from, 0)))
		c := b.Cursor()
		for k, v := c.Seek(start[:]); k != nil; k, v = c.Next() {
			if err := ctx.Err(); err != nil {
				return err
			}
			uk, err := parseUsageKey(k)
			if err != nil {
				return fmt.Errorf("usage row %x: %w", k, err)
			}
			if uk.Hour >= to {
				break
			}
			if (q.Key != "" && uk.Key != q.Key) || (q.Model != "" && uk.Model != q.Model) {
				continue
			}
			cs, err := decodeCounters(v)
			if err != nil {
				return fmt.Errorf("usage row %x: corrupt record: %w", k, err)
			}
			var g UsageRow
			if q.Group.Key {
				g.Key = uk.Key
			}
			if q.Group.Model {
				g.Model = uk.Model
			}
			if q.Group.Backend {
				g.Backend = uk.Provider + "/" + uk.UpstreamModel
			}
			if q.Group.Hour {
				g.Hour = time.Unix(uk.Hour*3600, 0).UTC()
			}
			sum := groups[g]
			if sum == nil {
				sum = &UsageCounters{}
				groups[g] = sum
			}
			sum.Add(cs)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	out := make([]UsageRow, 0, len(groups))
	for g, sum := range groups {
		g.UsageCounters = *sum
		out = append(out, g)
	}
	slices.SortFunc(out, func(a, b UsageRow) int {
		return cmp.Or(strings.Compare(a.Key, b.Key), strings.Compare(a.Model, b.Model),
			strings.Compare(a.Backend, b.Backend), a.Hour.Compare(b.Hour))
	})
	return out, nil
}

func floorHour(unix int64) int64 {
	h := unix / 3600
	if unix%3600 != 0 && unix < 0 {
		h--
	}
	return h
}

// QuotaCounters returns the quota counters of the windows from[dim] on, for the
// dimensions in from: what a restarted control plane takes back.
func (s *Store) QuotaCounters(ctx context.Context, from map[berryv1.QuotaDimension]int64) ([]QuotaCounter, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	var out []QuotaCounter
	err := s.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketQuota)
		if b == nil {
			return nil
		}
		c := b.Cursor()
		for d, w := range from {
			for k, v := c.Seek(quotaKey(d, w, "")); k != nil && k[0] == byte(d); k, v = c.Next() {
				if len(k) < 9 || len(v) != 8 {
					return fmt.Errorf("quota counter %x: corrupt record", k)
				}
				out = append(out, QuotaCounter{Key: string(k[9:]), Dim: d, Window: int64(binary.BigEndian.Uint64(k[1:9])),
					Consumed: int64(binary.BigEndian.Uint64(v))})
			}
		}
		return nil
	})
	return out, err
}

// purgeChunk bounds the deletions of one purge transaction, so that a first purge of
// a large ledger neither holds the writer long nor grows one transaction unbounded.
const purgeChunk = 10_000

// PurgeUsage deletes the ledger rows of the hours before before, and the quota
// counters of windows before quotaBefore[dim] (dimensions not in the map are kept).
// It returns how many of each it deleted.
func (s *Store) PurgeUsage(ctx context.Context, before time.Time, quotaBefore map[berryv1.QuotaDimension]int64) (rows, counters int, err error) {
	var bound [8]byte
	binary.BigEndian.PutUint64(bound[:], uint64(max(floorHour(before.Unix()), 0)))
	rows, err = s.purge(ctx, bucketUsage, func(k []byte) bool { return bytes.Compare(k[:min(len(k), 8)], bound[:]) < 0 }, nil)
	if err != nil {
		return rows, 0, err
	}
	for d, w := range quotaBefore {
		n, err := s.purge(ctx, bucketQuota, func(k []byte) bool {
			return len(k) >= 9 && k[0] == byte(d) && int64(binary.BigEndian.Uint64(k[1:9])) < w
		}, []byte{byte(d)})
		counters += n
		if err != nil {
			return rows, counters, err
		}
	}
	return rows, counters, nil
}

// purge deletes, a chunk per transaction, the keys of bucket from seek on for which
// below holds, stopping at the first for which it does not.
func (s *Store) purge(ctx context.Context, bucket []byte, below func(k []byte) bool, seek []byte) (int, error) {
	total := 0
	for {
		if err := ctx.Err(); err != nil {
			return total, err
		}
		n := 0
		err := s.db.Update(func(tx *bolt.Tx) error {
			b := tx.Bucket(bucket)
			if b == nil {
				return nil
			}
			var doomed [][]byte
			c := b.Cursor()
			k, _ := c.First()
			if seek != nil {
				k, _ = c.Seek(seek)
			}
			for ; k != nil && below(k) && len(doomed) < purgeChunk; k, _ = c.Next() {
				doomed = append(doomed, bytes.Clone(k))
			}
			for _, k := range doomed {
				if err := b.Delete(k); err != nil {
					return err
				}
			}
			n = len(doomed)
			return nil
		})
		total += n
		if err != nil || n < purgeChunk {
			return total, err
		}
	}
}
