// Command conns holds many client connections open against a proxy on loopback and
// reports the proxy's resident memory meanwhile: the memory half of
// bench/compare.sh (docs/benchmarks.md).
//
//	go run ./bench/conns -mode idle -n 10000 -url http://127.0.0.1:18284/v1/chat/completions -pids 1234
//	go run ./bench/conns -mode streams -n 1000 -url … -pids 1234 -model bench
//
// idle: every connection sends one request, reads its answer and then stays open and
// silent (a keep-alive connection between requests); at most -concurrency requests are
// in flight meanwhile, as under a steady load, so that what is measured is the cost of
// idle client connections, not of a pool of upstream connections 10,000 wide. streams: every connection asks
// for one streamed answer and reads it slowly to its end, all at the same time (the
// upstream makes the streams last; compare.sh runs a simulator with a chunk delay).
// It prints the proxy's RSS before, its highest sample while the connections are
// held, and its peak (VmHWM), summed over the given pids (nginx's master and workers).
package main

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

func main() {
	mode := flag.String("mode", "idle", "idle or streams")
	n := flag.Int("n", 1000, "connections")
	target := flag.String("url", "", "the proxy's chat completions URL (loopback only)")
	pidList := flag.String("pids", "", "comma-separated pids whose memory is read")
	model := flag.String("model", "bench", "model of the requests")
	token := flag.String("token", "berry-load-key", "bearer token")
	hold := flag.Duration("hold", 3*time.Second, "idle: how long the connections stay open after the last one is ready")
	timeout := flag.Duration("timeout", 2*time.Minute, "give up after this long")
	silent := flag.Bool("silent", false, "idle: connections open and send nothing at all (what a connection costs before its first request)")
	inFlight := flag.Int("concurrency", 64, "idle: requests in flight at once while the connections open, so the upstream pool stays as a steady load leaves it")
	flag.Parse()
	if err := run(*mode, *n, *target, *pidList, *model, *token, *hold, *timeout, *inFlight, *silent); err != nil {
		fmt.Fprintln(os.Stderr, "conns:", err)
		os.Exit(1)
	}
}

func run(mode string, n int, target, pidList, model, token string, hold, timeout time.Duration, inFlight int, silent bool) error {
	u, err := url.Parse(target)
	if err != nil || u.Host == "" {
		return fmt.Errorf("-url %q: want http://127.x.x.x:port/path", target)
	}
	host, _, err := net.SplitHostPort(u.Host)
	if ip := net.ParseIP(host); err != nil || ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("-url %q: only loopback addresses are load-tested", target)
	}
	var pids []int
	for _, p := range strings.Split(pidList, ",") {
		if p = strings.TrimSpace(p); p != "" {
			v, err := strconv.Atoi(p)
			if err != nil {
				return fmt.Errorf("-pids: %w", err)
			}
			pids = append(pids, v)
		}
	}
	if len(pids) == 0 {
		return errors.New("-pids: give the proxy's pids")
	}
	stream := mode == "streams"
	if !stream && mode != "idle" {
		return fmt.Errorf("-mode %q: idle or streams", mode)
	}
	body := fmt.Sprintf(`{"model":%q,"stream":%v,"messages":[{"role":"user","content":"Write a haiku about load balancers."}]}`, model, stream)
	req := fmt.Sprintf("POST %s HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s",
		u.RequestURI(), u.Host, token, len(body), body)

	before := rss(pids, "VmRSS")
	deadline := time.Now().Add(timeout)
	var (
		wg      sync.WaitGroup
		ready   sync.WaitGroup
		failed  atomic.Int64
		firstEr atomic.Value
		release = make(chan struct{})
	)
	conns := make([]net.Conn, n)
	slots := make(chan struct{}, max(inFlight, 1))
	ready.Add(n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			readyOnce := sync.OnceFunc(ready.Done)
			defer readyOnce()
			c, err := net.DialTimeout("tcp", u.Host, 10*time.Second)
			if err != nil {
				failed.Add(1)
				firstEr.CompareAndSwap(nil, err)
				return
			}
			conns[i] = c
			_ = c.SetDeadline(deadline)
			if silent && !stream {
				readyOnce()
				<-release
				return
			}
			if !stream {
				slots <- struct{}{}
			}
			_, err = io.WriteString(c, req)
			if err == nil {
				err = readAnswer(bufio.NewReaderSize(c, 512), stream, readyOnce)
			}
			if !stream {
				<-slots
			}
			if err != nil {
				failed.Add(1)
				firstEr.CompareAndSwap(nil, err)
				return
			}
			if !stream {
				readyOnce()
				<-release
			}
		}()
		if i%200 == 199 {
			time.Sleep(10 * time.Millisecond) // a burst of 10,000 SYNs overflows the backlog
		}
	}
	// Sample while the connections are being opened and held.
	var peak int64
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		for {
			if v := rss(pids, "VmRSS"); v > peak {
				peak = v
			}
			select {
			case <-release:
				return
			case <-time.After(100 * time.Millisecond):
			}
		}
	}()
	ready.Wait()
	if !stream {
		time.Sleep(hold)
	}
	if stream {
		wg.Wait()
	}
	close(release)
	<-sampled
	wg.Wait()
	hwm := rss(pids, "VmHWM")
	for _, c := range conns {
		if c != nil {
			_ = c.Close()
		}
	}
	fmt.Printf("%s n=%d failed=%d rss_before_mb=%.1f rss_held_max_mb=%.1f peak_rss_mb=%.1f\n",
		mode, n, failed.Load(), mb(before), mb(peak), mb(hwm))
	if f := failed.Load(); f > 0 {
		return fmt.Errorf("%d of %d connections failed, first: %v", f, n, firstEr.Load())
	}
	return nil
}

// readAnswer reads one HTTP/1.1 answer: a Content-Length body, or a chunked stream to
// its last chunk; first is called once the status line arrived.
func readAnswer(br *bufio.Reader, stream bool, first func()) error {
	status, err := br.ReadString('\n')
	if err != nil {
		return fmt.Errorf("reading the status: %w", err)
	}
	if !strings.HasPrefix(status, "HTTP/1.1 200") {
		return fmt.Errorf("answer %q", strings.TrimSpace(status))
	}
	if stream {
		first()
	}
	length, chunked := -1, false
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			return fmt.Errorf("reading headers: %w", err)
		}
		line = strings.TrimRight(line, "\r\n")
		if line == "" {
			break
		}
		k, v, _ := strings.Cut(line, ":")
		switch strings.ToLower(k) {
		case "content-length":
			length, _ = strconv.Atoi(strings.TrimSpace(v))
		case "transfer-encoding":
			chunked = strings.Contains(strings.ToLower(v), "chunked")
		}
	}
	if !chunked {
		if length < 0 {
			return errors.New("answer without Content-Length or chunked encoding")
		}
		_, err := io.CopyN(io.Discard, br, int64(length))
		return err
	}
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			return fmt.Errorf("reading a chunk: %w", err)
		}
		size, err := strconv.ParseInt(strings.TrimSpace(strings.SplitN(line, ";", 2)[0]), 16, 64)
		if err != nil {
			return fmt.Errorf("chunk size %q: %w", line, err)
		}
		if _, err := io.CopyN(io.Discard, br, size+2); err != nil {
			return err
		}
		if size == 0 {
			return nil
		}
	}
}

// rss sums a /proc/PID/status field (kB) over pids, in bytes.
func rss(pids []int, field string) int64 {
	var total int64
	for _, p := range pids {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p))
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, field+":"); ok {
				kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
				total += kb * 1024
			}
		}
	}
	return total
}

func mb(b int64) float64 { return float64(b) / (1 << 20) }
