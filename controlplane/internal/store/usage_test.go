package store

import (
	"context"
	"fmt"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	berryv1 "github.com/berry-gateway/berry/pkg/api/berry/v1"
)

const (
	rpm    = berryv1.QuotaDimension_QUOTA_DIMENSION_REQUESTS_MINUTE
	cmonth = berryv1.QuotaDimension_QUOTA_DIMENSION_COST_MONTH
)

var hour0 = time.Date(2026, 3, 14, 10, 0, 0, 0, time.UTC)

func h(n int) int64 { return hour0.Unix()/3600 + int64(n) }

func usageBatch() *UsageBatch {
	return &UsageBatch{Usage: map[UsageKey]UsageCounters{
		{h(0), "alice", "gpt", "openai", "gpt-4o"}:         {Requests: 2, InputTokens: 100, OutputTokens: 20, CostMicroUSD: 1500},
		{h(0), "alice", "gpt", "azure", "gpt-4o"}:          {Requests: 1, InputTokens: 50, OutputTokens: 10, CachedTokens: 5, CostMicroUSD: 700},
		{h(1), "alice", "claude", "anthropic", "sonnet-4"}: {Requests: 3, InputTokens: 300, OutputTokens: 90, ReasoningTokens: 40, CostMicroUSD: 9000, Estimated: 1},
		{h(1), "bob", "gpt", "openai", "gpt-4o"}:           {Requests: 4, InputTokens: 400, OutputTokens: 40, CostMicroUSD: 4000},
		{h(30), "bob", "gpt", "openai", "gpt-4o"}:          {Requests: 1, InputTokens: 1, OutputTokens: 1, CostMicroUSD: 1},
	}}
}

func TestUsageLedger(t *testing.T) {
	ctx := context.Background()
	s, path := openTemp(t)
	if rows, err := s.Usage(ctx, UsageQuery{Since: hour0, Until: hour0.Add(time.Hour)}); err != nil || len(rows) != 0 {
		t.Fatalf("empty ledger: %v, %v", rows, err)
	}
	if err := s.WriteUsage(ctx, usageBatch()); err != nil {
		t.Fatal(err)
	}
	// A second batch adds to the rows it names.
	if err := s.WriteUsage(ctx, &UsageBatch{Usage: map[UsageKey]UsageCounters{
		{h(0), "alice", "gpt", "openai", "gpt-4o"}: {Requests: 1, InputTokens: 10, OutputTokens: 2, CostMicroUSD: 150},
	}}); err != nil {
		t.Fatal(err)
	}
	day := UsageQuery{Since: hour0, Until: hour0.Add(24 * time.Hour)}
	q := func(mod func(*UsageQuery)) []UsageRow {
		t.Helper()
		x := day
		mod(&x)
		rows, err := s.Usage(ctx, x)
		if err != nil {
			t.Fatal(err)
		}
		return rows
	}
	// One total row.
	if got := q(func(*UsageQuery) {}); len(got) != 1 || got[0].Requests != 11 || got[0].CostMicroUSD != 15350 ||
		got[0].Estimated != 1 || got[0].Key != "" || !got[0].Hour.IsZero() {
		t.Fatalf("total: %+v", got)
	}
	// By key and model, sorted.
	want := []UsageRow{
		{Key: "alice", Model: "claude", UsageCounters: UsageCounters{Requests: 3, InputTokens: 300, OutputTokens: 90, ReasoningTokens: 40, CostMicroUSD: 9000, Estimated: 1}},
		{Key: "alice", Model: "gpt", UsageCounters: UsageCounters{Requests: 4, InputTokens: 160, OutputTokens: 32, CachedTokens: 5, CostMicroUSD: 2350}},
		{Key: "bob", Model: "gpt", UsageCounters: UsageCounters{Requests: 4, InputTokens: 400, OutputTokens: 40, CostMicroUSD: 4000}},
	}
	if got := q(func(x *UsageQuery) { x.Group = UsageGroup{Key: true, Model: true} }); !reflect.DeepEqual(got, want) {
		t.Fatalf("by key, model:\n%+v\nwant\n%+v", got, want)
	}
	// Filters, by backend and hour.
	got := q(func(x *UsageQuery) { x.Key, x.Model, x.Group = "alice", "gpt", UsageGroup{Backend: true, Hour: true} })
	if len(got) != 2 || got[0].Backend != "azure/gpt-4o" || got[1].Backend != "openai/gpt-4o" || got[1].Requests != 3 ||
		!got[0].Hour.Equal(hour0) || got[0].Key != "" {
		t.Fatalf("alice's gpt by backend and hour: %+v", got)
	}
	// Hours overlapping [since, until): 10:30..11:00 is hour 10 only; 11:00 on, hour 11.
	if got := q(func(x *UsageQuery) { x.Since, x.Until = hour0.Add(30*time.Minute), hour0.Add(time.Hour) }); got[0].Requests != 4 {
		t.Fatalf("hour 10 only: %+v", got)
	}
	if got := q(func(x *UsageQuery) { x.Since = hour0.Add(time.Hour) }); got[0].Requests != 7 {
		t.Fatalf("from hour 11: %+v", got)
	}
	// Restart: the rows are on disk.
	s.Close()
	s2, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	rows, err := s2.Usage(ctx, UsageQuery{Since: hour0, Until: hour0.Add(48 * time.Hour)})
	if err != nil || len(rows) != 1 || rows[0].Requests != 12 {
		t.Fatalf("after reopen: %+v, %v", rows, err)
	}
	// Retention: everything before hour 1 goes.
	n, _, err := s2.PurgeUsage(ctx, hour0.Add(time.Hour), nil)
	if err != nil || n != 2 {
		t.Fatalf("purge: %d rows, %v; want 2", n, err)
	}
	rows, _ = s2.Usage(ctx, UsageQuery{Since: hour0, Until: hour0.Add(48 * time.Hour)})
	if rows[0].Requests != 8 {
		t.Fatalf("after purge: %+v", rows)
	}
}

// A purge larger than one transaction's chunk takes several.
func TestPurgeChunks(t *testing.T) {
	ctx := context.Background()
	s, _ := openTemp(t)
	b := &UsageBatch{Usage: map[UsageKey]UsageCounters{}}
	for i := range purgeChunk*2 + 5 {
		b.Usage[UsageKey{h(i % 3), fmt.Sprint("k", i), "m", "p", "u"}] = UsageCounters{Requests: 1}
	}
	if err := s.WriteUsage(ctx, b); err != nil {
		t.Fatal(err)
	}
	n, _, err := s.PurgeUsage(ctx, hour0.Add(100*time.Hour), nil)
	if err != nil || n != purgeChunk*2+5 {
		t.Fatalf("purged %d, %v", n, err)
	}
}

func TestQuotaCounters(t *testing.T) {
	ctx := context.Background()
	s, path := openTemp(t)
	if err := s.WriteUsage(ctx, &UsageBatch{QuotaPut: []QuotaCounter{
		{"alice", rpm, 100, 5}, {"alice", rpm, 101, 7}, {"bob", rpm, 101, -3}, {"alice", cmonth, 24315, 1_000_000},
		{"bob", rpm, 99, 1},
	}}); err != nil {
		t.Fatal(err)
	}
	if err := s.WriteUsage(ctx, &UsageBatch{QuotaPut: []QuotaCounter{{"alice", rpm, 101, 9}}, QuotaDelete: []QuotaCounter{{Key: "bob", Dim: rpm, Window: 99}}}); err != nil {
		t.Fatal(err)
	}
	s.Close()
	s, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	got, err := s.QuotaCounters(ctx, map[berryv1.QuotaDimension]int64{rpm: 101, cmonth: 24315})
	want := []QuotaCounter{{"alice", rpm, 101, 9}, {"bob", rpm, 101, -3}, {"alice", cmonth, 24315, 1_000_000}}
	if err != nil || len(got) != 3 {
		t.Fatalf("counters %+v, %v", got, err)
	}
	for _, w := range want {
		found := false
		for _, g := range got {
			found = found || g == w
		}
		if !found {
			t.Fatalf("counters %+v lack %+v", got, w)
		}
	}
	_, n, err := s.PurgeUsage(ctx, time.Time{}, map[berryv1.QuotaDimension]int64{rpm: 101})
	if err != nil || n != 1 {
		t.Fatalf("purged %d counters, %v; want 1 (alice's window 100)", n, err)
	}
	if got, _ := s.QuotaCounters(ctx, map[berryv1.QuotaDimension]int64{rpm: 0}); len(got) != 2 {
		t.Fatalf("after purge %+v", got)
	}
}

// The quota edges are replaced whole by a batch that says so, in the transaction of
// the counters, and read back from a day on.
func TestQuotaEdges(t *testing.T) {
	ctx := context.Background()
	s, path := openTemp(t)
	if got, err := s.QuotaEdges(ctx, 0); err != nil || len(got) != 0 {
		t.Fatalf("no edges yet: %v, %v", got, err)
	}
	if (&UsageBatch{ReplaceEdges: true}).Empty() {
		t.Fatal("a batch replacing the edges with none is not empty")
	}
	if err := s.WriteUsage(ctx, &UsageBatch{QuotaPut: []QuotaCounter{{"alice", rpm, 100, 5}},
		QuotaEdges: []QuotaEdge{{"e1", 200}, {"e2", 200}, {"old", 199}, {"", 200}}, ReplaceEdges: true}); err != nil {
		t.Fatal(err)
	}
	// A batch that does not replace them leaves them.
	if err := s.WriteUsage(ctx, &UsageBatch{QuotaPut: []QuotaCounter{{"alice", rpm, 100, 6}}, QuotaEdges: []QuotaEdge{{"x", 200}}}); err != nil {
		t.Fatal(err)
	}
	s.Close()
	s, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	got, err := s.QuotaEdges(ctx, 200)
	if want := []QuotaEdge{{"e1", 200}, {"e2", 200}}; err != nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("edges %+v, %v; want %+v", got, err, want)
	}
	if got, _ := s.QuotaEdges(ctx, 0); len(got) != 3 {
		t.Fatalf("edges from day 0: %+v", got)
	}
	if err := s.WriteUsage(ctx, &UsageBatch{QuotaEdges: []QuotaEdge{{"e3", 201}}, ReplaceEdges: true}); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.QuotaEdges(ctx, 0); !reflect.DeepEqual(got, []QuotaEdge{{"e3", 201}}) {
		t.Fatalf("replaced edges %+v", got)
	}
	if err := s.WriteUsage(ctx, &UsageBatch{ReplaceEdges: true}); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.QuotaEdges(ctx, 0); len(got) != 0 {
		t.Fatalf("edges after replacing with none: %+v", got)
	}
}

// A backup carries the ledger and the counters, and a restored file serves them.
func TestBackupCarriesUsage(t *testing.T) {
	ctx := context.Background()
	s, _ := openTemp(t)
	if _, _, err := s.Update(ctx, UpdateRequest{Mutate: replace(cfg("m"))}); err != nil {
		t.Fatal(err)
	}
	b := usageBatch()
	b.QuotaPut = []QuotaCounter{{"alice", rpm, 7, 3}}
	if err := s.WriteUsage(ctx, b); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	backup := filepath.Join(dir, "backup.db")
	if _, err := s.BackupFile(ctx, backup); err != nil {
		t.Fatal(err)
	}
	dst := filepath.Join(dir, "restored.db")
	if err := Restore(backup, dst); err != nil {
		t.Fatal(err)
	}
	r, err := Open(dst, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	rows, err := r.Usage(ctx, UsageQuery{Since: hour0, Until: hour0.Add(48 * time.Hour)})
	if err != nil || len(rows) != 1 || rows[0].Requests != 11 {
		t.Fatalf("restored ledger %+v, %v", rows, err)
	}
	if qs, err := r.QuotaCounters(ctx, map[berryv1.QuotaDimension]int64{rpm: 0}); err != nil || len(qs) != 1 || qs[0].Consumed != 3 {
		t.Fatalf("restored counters %+v, %v", qs, err)
	}
}

func TestUsageKeyRoundTrip(t *testing.T) {
	for _, k := range []UsageKey{{h(0), "", "", "", ""}, {h(5), "a\x00b", "m/x", "p", "u:1"}} {
		got, err := parseUsageKey(usageKey(k))
		if err != nil || got != k {
			t.Fatalf("%+v: %+v, %v", k, got, err)
		}
	}
	for _, bad := range [][]byte{nil, make([]byte, 7), append(make([]byte, 8), 5, 'a')} {
		if _, err := parseUsageKey(bad); err == nil {
			t.Fatalf("%x parsed", bad)
		}
	}
}

// BenchmarkWriteUsage: one ledger flush (one fsynced transaction) of rows rows into
// a ledger that already holds them (each row read, added to and written back), plus
// as many quota counters.
func BenchmarkWriteUsage(b *testing.B) {
	ctx := context.Background()
	for _, rows := range []int{100, 1000, 10_000} {
		b.Run(fmt.Sprint("rows=", rows), func(b *testing.B) {
			s, _ := openTemp(b)
			batch := &UsageBatch{Usage: map[UsageKey]UsageCounters{}}
			for i := range rows {
				batch.Usage[UsageKey{h(0), fmt.Sprintf("key-%05d", i), fmt.Sprint("model-", i%7), "openai", fmt.Sprint("gpt-", i%7)}] =
					UsageCounters{Requests: 3, InputTokens: 3000, OutputTokens: 500, CostMicroUSD: 12345}
				batch.QuotaPut = append(batch.QuotaPut, QuotaCounter{fmt.Sprintf("key-%05d", i), rpm, 1000, int64(i)})
			}
			if err := s.WriteUsage(ctx, batch); err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			for b.Loop() {
				if err := s.WriteUsage(ctx, batch); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(rows)*float64(b.N)/b.Elapsed().Seconds(), "rows/s")
		})
	}
}
