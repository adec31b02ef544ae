// Package metrics holds the lock-free counters and histograms the edge updates on the
// request path, and writes them in the Prometheus text exposition format. The request
// path only does atomic adds; formatting happens at scrape time, streamed.
package metrics

import (
	"bufio"
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

// Writer writes exposition text to W as it goes, so an exposition of any size needs
// no more memory than W's buffer; numbers are formatted in a reused scratch slice.
type Writer struct {
	W   *bufio.Writer
	num []byte
}

// Header writes the HELP and TYPE lines of a metric family.
func (w *Writer) Header(name, typ, help string) {
	w.W.WriteString("# HELP ")
	w.W.WriteString(name)
	w.W.WriteByte(' ')
	w.W.WriteString(help)
	w.W.WriteString("\n# TYPE ")
	w.W.WriteString(name)
	w.W.WriteByte(' ')
	w.W.WriteString(typ)
	w.W.WriteByte('\n')
}

// Sample writes one sample line; labels alternate name, value.
func (w *Writer) Sample(name string, v float64, labels ...string) {
	w.W.WriteString(name)
	w.labels(labels, "", "")
	w.W.WriteByte(' ')
	w.num = appendFloat(w.num[:0], v)
	w.W.Write(w.num)
	w.W.WriteByte('\n')
}

// Histogram writes the _bucket, _sum and _count lines of h.
func (w *Writer) Histogram(name string, h *Histogram, labels ...string) {
	var cum uint64
	for i := range h.counts {
		cum += h.counts[i].Load()
		le := "+Inf"
		if i < len(Buckets) {
			le = bucketLabels[i]
		}
		w.W.WriteString(name)
		w.W.WriteString("_bucket")
		w.labels(labels, "le", le)
		w.W.WriteByte(' ')
		w.num = strconv.AppendUint(w.num[:0], cum, 10)
		w.W.Write(w.num)
		w.W.WriteByte('\n')
	}
	w.W.WriteString(name)
	w.W.WriteString("_sum")
	w.labels(labels, "", "")
	w.W.WriteByte(' ')
	w.num = appendFloat(w.num[:0], time.Duration(h.sumNs.Load()).Seconds())
	w.W.Write(w.num)
	w.W.WriteByte('\n')
	w.W.WriteString(name)
	w.W.WriteString("_count")
	w.labels(labels, "", "")
	w.W.WriteByte(' ')
	w.num = strconv.AppendUint(w.num[:0], cum, 10)
	w.W.Write(w.num)
	w.W.WriteByte('\n')
}

// bucketLabels are the le values of Buckets, formatted once.
var bucketLabels = func() (out [len(Buckets)]string) {
	for i, b := range Buckets {
		out[i] = strconv.FormatFloat(b, 'g', -1, 64)
	}
	return out
}()

func (w *Writer) labels(kv []string, extraK, extraV string) {
	if len(kv) == 0 && extraK == "" {
		return
	}
	w.W.WriteByte('{')
	n := 0
	for i := 0; i+1 < len(kv); i += 2 {
		if n > 0 {
			w.W.WriteByte(',')
		}
		n++
		w.label(kv[i], kv[i+1])
	}
	if extraK != "" {
		if n > 0 {
			w.W.WriteByte(',')
		}
		w.label(extraK, extraV)
	}
	w.W.WriteByte('}')
}

func (w *Writer) label(k, v string) {
	w.W.WriteString(k)
	w.W.WriteString(`="`)
	for i := 0; i < len(v); i++ {
		switch c := v[i]; c {
		case '\\':
			w.W.WriteString(`\\`)
		case '"':
			w.W.WriteString(`\"`)
		case '\n':
			w.W.WriteString(`\n`)
		default:
			w.W.WriteByte(c)
		}
	}
	w.W.WriteByte('"')
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
