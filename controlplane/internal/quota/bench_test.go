package quota

import (
	"fmt"
	"testing"
	"time"

	berryv1 "github.com/berry-gateway/berry/pkg/api/berry/v1"
)

// BenchmarkTick: one grant interval of a fleet of 1,000 edges and 10,000 active keys
// (a requests-per-minute limit each), every key used from perEdge edges. One op is
// the control plane's whole interval: every edge's batch applied (reports and grant
// confirmations), Tick, and one Take per edge. grants/s is QuotaGrant entries
// computed per second of that work; tick-ms the Tick alone.
func BenchmarkTick(b *testing.B) {
	const edges, keys = 1000, 10_000
	for _, perEdge := range []int{1, 4, 16} {
		b.Run(fmt.Sprintf("1000-edges-10000-keys-%d-edges-per-key", perEdge), func(b *testing.B) {
			clk := newClock(t0)
			eng := New(Options{Now: clk.Now})
			lims := make(map[string]Limits, keys)
			names := make([]string, keys)
			for k := range keys {
				names[k] = fmt.Sprintf("key-%05d", k)
				var l Limits
				l[rpm] = 1 << 40 // never the bottleneck: every interval grants
				lims[names[k]] = l
			}
			eng.SetLimits(lims)
			ids := make([]string, edges)
			batches := make([]*berryv1.ObservationBatch, edges)
			for i := range edges {
				ids[i] = fmt.Sprintf("edge-%04d", i)
				eng.Connect(ids[i])
				batches[i] = &berryv1.ObservationBatch{Instance: ids[i]}
			}
			w := Window(rpm, clk.Now())
			for k := range keys {
				for j := range perEdge {
					i := (k*7 + j*131) % edges
					batches[i].Quota = append(batches[i].Quota, &berryv1.QuotaReport{Key: names[k], Dimension: rpm, Window: w,
						Consumed: 3, Demand: 3, Balance: 1})
				}
			}
			seqs := make([]uint64, edges)
			var tickTime time.Duration
			grants0 := eng.Stats().Grants
			b.ResetTimer()
			for b.Loop() {
				for i, id := range ids {
					bt := batches[i]
					bt.Seq++
					bt.AppliedGrantSeq, bt.GrantInstance = seqs[i], eng.Instance()
					eng.Observe(id, bt)
				}
				start := time.Now()
				eng.Tick()
				tickTime += time.Since(start)
				for i, id := range ids {
					seqs[i] = eng.Take(id).GetSeq()
				}
			}
			grants := eng.Stats().Grants - grants0
			b.ReportMetric(float64(grants)/b.Elapsed().Seconds(), "grants/s")
			b.ReportMetric(float64(grants)/float64(b.N), "grants/op")
			b.ReportMetric(float64(tickTime.Milliseconds())/float64(b.N), "tick-ms")
		})
	}
}
