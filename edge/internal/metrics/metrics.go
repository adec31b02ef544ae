// Package metrics holds the lock-free counters and histograms the edge updates on the
// request path, and writes them in the Prometheus text exposition format. The request
// path only does atomic adds; formatting happens at scrape time.
package metrics

import (
	"math"
	"strconv"
	"sync/atomic"
	"time"
)

// Buckets are the upper bounds, in seconds, of every latency histogram.
var Buckets = [...]float64{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120}

// Histogram is a latency histogram; the zero value is ready.
type Histogram struct {
	counts [len(Buckets) + 1]atomic.Uint64 // the last is +Inf
	sumNs  atomic.Int64
}

// Observe records one duration.
func (h *Histogram) Observe(d time.Duration) {
	s := d.Seconds()
	i := 0
	for i < len(Buckets) && s > Buckets[i] {
		i++
	}
	h.counts[i].Add(1)
	h.sumNs.Add(int64(d))
}

// Count returns the number of observations.
func (h *Histogram) Count() uint64 {
	var n uint64
	for i := range h.counts {
		n += h.counts[i].Load()
	}
	return n
}

// Writer appends exposition text to a buffer.
type Writer struct{ B []byte }

// Header writes the HELP and TYPE lines of a metric family.
func (w *Writer) Header(name, typ, help string) {
	w.B = append(w.B, "# HELP "...)
	w.B = append(w.B, name...)
	w.B = append(w.B, ' ')
	w.B = append(w.B, help...)
	w.B = append(w.B, "\n# TYPE "...)
	w.B = append(w.B, name...)
	w.B = append(w.B, ' ')
	w.B = append(w.B, typ...)
	w.B = append(w.B, '\n')
}

// Sample writes one sample line; labels alternate name, value.
func (w *Writer) Sample(name string, v float64, labels ...string) {
	w.B = append(w.B, name...)
	w.labels(labels, "", "")
	w.B = append(w.B, ' ')
	w.B = appendFloat(w.B, v)
	w.B = append(w.B, '\n')
}

// Histogram writes the _bucket, _sum and _count lines of h.
func (w *Writer) Histogram(name string, h *Histogram, labels ...string) {
	var cum uint64
	for i := range h.counts {
		cum += h.counts[i].Load()
		le := "+Inf"
		if i < len(Buckets) {
			le = strconv.FormatFloat(Buckets[i], 'g', -1, 64)
		}
		w.B = append(w.B, name...)
		w.B = append(w.B, "_bucket"...)
		w.labels(labels, "le", le)
		w.B = append(w.B, ' ')
		w.B = strconv.AppendUint(w.B, cum, 10)
		w.B = append(w.B, '\n')
	}
	w.B = append(w.B, name...)
	w.B = append(w.B, "_sum"...)
	w.labels(labels, "", "")
	w.B = append(w.B, ' ')
	w.B = appendFloat(w.B, time.Duration(h.sumNs.Load()).Seconds())
	w.B = append(w.B, '\n')
	w.B = append(w.B, name...)
	w.B = append(w.B, "_count"...)
	w.labels(labels, "", "")
	w.B = append(w.B, ' ')
	w.B = strconv.AppendUint(w.B, cum, 10)
	w.B = append(w.B, '\n')
}

func (w *Writer) labels(kv []string, extraK, extraV string) {
	if len(kv) == 0 && extraK == "" {
		return
	}
	w.B = append(w.B, '{')
	n := 0
	for i := 0; i+1 < len(kv); i += 2 {
		if n > 0 {
			w.B = append(w.B, ',')
		}
		n++
		w.B = appendLabel(w.B, kv[i], kv[i+1])
	}
	if extraK != "" {
		if n > 0 {
			w.B = append(w.B, ',')
		}
		w.B = appendLabel(w.B, extraK, extraV)
	}
	w.B = append(w.B, '}')
}

func appendLabel(b []byte, k, v string) []byte {
	b = append(b, k...)
	b = append(b, '=', '"')
	for i := 0; i < len(v); i++ {
		switch c := v[i]; c {
		case '\\':
			b = append(b, '\\', '\\')
		case '"':
			b = append(b, '\\', '"')
		case '\n':
			b = append(b, '\\', 'n')
		default:
			b = append(b, c)
		}
	}
	return append(b, '"')
}

func appendFloat(b []byte, v float64) []byte {
	switch {
	case math.IsInf(v, 1):
		return append(b, "+Inf"...)
	case math.IsNaN(v):
		return append(b, "NaN"...)
	}
	return strconv.AppendFloat(b, v, 'g', -1, 64)
}
