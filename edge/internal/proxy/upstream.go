package proxy

import (
	"errors"
	"net"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"
)

// newClient returns the fasthttp client for upstream calls. Dialing is bounded by
// connectTimeout. For streamed answers (perRead) the request timeout fasthttp applies
// as one read deadline over the whole response is turned into a deadline per read: the
// time to the first byte and every gap between chunks are bounded by it, but a long
// generation that keeps sending is never cut.
func newClient(connectTimeout time.Duration, perRead bool) *fasthttp.Client {
	d := &net.Dialer{Timeout: connectTimeout, KeepAlive: 30 * time.Second}
	return &fasthttp.Client{
		Name:            "berry-edge",
		MaxConnsPerHost: 4096,
		// Past the limit, wait for a connection rather than fail the attempt (which would
		// count against the backend's breaker for the edge's own congestion).
		MaxConnWaitTimeout:     connectTimeout,
		MaxIdleConnDuration:    90 * time.Second,
		ReadBufferSize:         16 << 10,
		DisablePathNormalizing: true,
		// An attempt that failed goes to the next backend, and a POST must not be sent
		// twice to the same one behind the proxy's back; the one exception is a pooled
		// keep-alive connection the upstream had already closed, where nothing was read.
		RetryIfErr: func(_ *fasthttp.Request, attempts int, err error) (bool, bool) {
			return false, attempts < 2 && errors.Is(err, fasthttp.ErrConnectionClosed)
		},
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
	timeout atomic.Int64
	local   *connAddr
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
	a, ok := resp.LocalAddr().(*connAddr)
	if ok {
		a.conn.timeout.Store(int64(d))
	}
	return ok
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
	return c.Conn.Read(p)
}
