package proxy

import (
	"errors"
	"io"
	"net"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/valyala/fasthttp"
)

// upstreams are the fasthttp clients for upstream calls: for buffered and for
// streamed answers, one that keeps connections alive in a pool and one that dials a
// fresh connection for every request (its requests say "Connection: close", so its
// pool stays empty).
type upstreams struct {
	buffered, streaming           *fasthttp.Client
	freshBuffered, freshStreaming *fasthttp.Client
}

func newUpstreams(connectTimeout time.Duration, maxBody int) upstreams {
	return upstreams{
		buffered: newClient(connectTimeout, false, maxBody), streaming: newClient(connectTimeout, true, 0),
		freshBuffered: newClient(connectTimeout, false, maxBody), freshStreaming: newClient(connectTimeout, true, 0),
	}
}

// do sends req on a pooled connection, or on a fresh one when fresh is set. A pooled
// connection the upstream has closed in the meantime (it restarted, or dropped idle
// connections first) fails before any byte of an answer comes back; that says nothing
// about the backend, so the request goes once more over a fresh connection, and only
// that result counts.
func (u *upstreams) do(req *fasthttp.Request, resp *fasthttp.Response, stream, fresh bool) error {
	if !fresh {
		c := u.buffered
		if stream {
			c = u.streaming
		}
		err := c.Do(req, resp)
		if err == nil || !staleConnection(err) {
			return err
		}
	}
	c := u.freshBuffered
	if stream {
		c = u.freshStreaming
	}
	req.SetConnectionClose()
	err := c.Do(req, resp)
	req.Header.ResetConnectionClose()
	return err
}

// staleConnection reports whether err is how a connection that the upstream closed
// before answering fails: the connection ended, or was reset, with no byte of a
// response read.
func staleConnection(err error) bool {
	return errors.Is(err, fasthttp.ErrConnectionClosed) || errors.Is(err, io.EOF) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}

// newClient returns a fasthttp client for upstream calls. Dialing is bounded by
// connectTimeout. For streamed answers (perRead) the request timeout fasthttp applies
// as one read deadline over the whole response is turned into a deadline per read: the
// time to the first byte and every gap between chunks are bounded by it, but a long
// generation that keeps sending is never cut. maxBody bounds a buffered answer (0:
// none; streamed answers are bounded by the relay as they pass).
func newClient(connectTimeout time.Duration, perRead bool, maxBody int) *fasthttp.Client {
	d := &net.Dialer{Timeout: connectTimeout, KeepAlive: 30 * time.Second}
	return &fasthttp.Client{
		Name:            "berry-edge",
		MaxConnsPerHost: 4096,
		// Past the limit, wait for a connection rather than fail the attempt (which would
		// count against the backend's breaker for the edge's own congestion).
		MaxConnWaitTimeout:     connectTimeout,
		MaxIdleConnDuration:    90 * time.Second,
		ReadBufferSize:         8 << 10,
		MaxResponseBodySize:    maxBody,
		DisablePathNormalizing: true,
		// An attempt that failed goes to the next backend, and a POST must not be sent
		// twice to the same one behind the proxy's back; upstreams.do alone decides the
		// one repeat there is (a stale pooled connection).
		RetryIfErr: func(*fasthttp.Request, int, error) (bool, bool) { return false, false },
		Dial: func(addr string) (net.Conn, error) {
			c, err := d.Dial("tcp", addr)
			if err != nil || !perRead {
				return c, err
			}
			pc := &perReadConn{Conn: c}
			pc.local = &connAddr{Addr: c.LocalAddr(), conn: pc}
			return pc, nil
		},
	}
}

// perReadConn turns read deadlines into per-read timeouts: SetReadDeadline(t) records
// t-now, and every Read then gets a fresh deadline that far ahead.
type perReadConn struct {
	net.Conn
	timeout     atomic.Int64
	local       *connAddr
	interrupted atomic.Bool // by interrupt: reads fail with errShuttingDown
}

// interrupt makes the read in progress, and every later one, fail with
// errShuttingDown.
func (c *perReadConn) interrupt() {
	c.interrupted.Store(true)
	_ = c.Conn.SetReadDeadline(time.Now())
}

// connOf returns the connection resp is being read from, when it is a perReadConn.
func connOf(resp *fasthttp.Response) *perReadConn {
	if a, ok := resp.LocalAddr().(*connAddr); ok {
		return a.conn
	}
	return nil
}

// connAddr is the connection's local address carrying the connection itself. fasthttp
// records a connection's addresses in the Response it read (Response.LocalAddr), so
// this is how the proxy reaches the connection a stream arrives on — to switch it to
// the idle timeout once content flows — without a lookup table.
type connAddr struct {
	net.Addr
	conn *perReadConn
}

// LocalAddr returns the local address, which also leads back to c.
func (c *perReadConn) LocalAddr() net.Addr { return c.local }

// setReadTimeout replaces the per-read timeout of the connection resp was read from,
// until fasthttp sets a deadline for its next request. It reports false when resp did
// not come over a perReadConn.
func setReadTimeout(resp *fasthttp.Response, d time.Duration) bool {
	c := connOf(resp)
	if c != nil {
		c.timeout.Store(int64(d))
	}
	return c != nil
}

func (c *perReadConn) SetReadDeadline(t time.Time) error {
	if t.IsZero() {
		c.timeout.Store(0)
	} else {
		c.timeout.Store(int64(time.Until(t)))
	}
	return c.Conn.SetReadDeadline(t)
}

func (c *perReadConn) SetDeadline(t time.Time) error {
	if err := c.SetReadDeadline(t); err != nil {
		return err
	}
	return c.Conn.SetWriteDeadline(t)
}

func (c *perReadConn) Read(p []byte) (int, error) {
	if d := c.timeout.Load(); d > 0 {
		if err := c.Conn.SetReadDeadline(time.Now().Add(time.Duration(d))); err != nil {
			return 0, err
		}
	}
	// Checked after the deadline is set: an interrupt racing with this read either
	// is seen here or has its deadline win.
	if c.interrupted.Load() {
		return 0, errShuttingDown
	}
	n, err := c.Conn.Read(p)
	if err != nil && c.interrupted.Load() {
		err = errShuttingDown
	}
	return n, err
}
