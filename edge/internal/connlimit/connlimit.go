// Package connlimit caps the client connections an edge serves at once. A connection
// past the cap is answered at once with a 503 in OpenAI's error shape, with
// Retry-After, and closed, so a client (or a load balancer's health check) learns why
// instead of timing out, and the edge's memory stays bounded.
package connlimit

import (
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// Listener accepts at most Max connections at once from the listener it wraps (0: no
// cap).
type Listener struct {
	net.Listener
	Max int

	active  atomic.Int64
	refused atomic.Uint64
}

// refusal is the whole answer to a connection past the cap.
var refusal = func() []byte {
	body := `{"error":{"message":"the gateway is serving as many connections as it may; retry shortly","type":"service_unavailable","code":"too_many_connections"}}`
	return []byte("HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nRetry-After: 1\r\n" +
		"Connection: close\r\nContent-Length: " + strconv.Itoa(len(body)) + "\r\n\r\n" + body)
}()

// Accept returns the next connection within the cap; the ones past it are refused
// and closed without ever being returned.
func (l *Listener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		if n := l.active.Add(1); l.Max > 0 && n > int64(l.Max) {
			l.active.Add(-1)
			l.refused.Add(1)
			go refuse(c)
			continue
		}
		return &conn{Conn: c, l: l}, nil
	}
}

// refuse answers a connection past the cap and closes it, without waiting long for a
// client that does not read.
func refuse(c net.Conn) {
	_ = c.SetWriteDeadline(time.Now().Add(time.Second))
	_, _ = c.Write(refusal)
	_ = c.Close()
}

// Active is the number of connections open now; Refused counts those refused.
func (l *Listener) Active() int64   { return l.active.Load() }
func (l *Listener) Refused() uint64 { return l.refused.Load() }

// conn gives its place back once, when closed.
type conn struct {
	net.Conn
	l    *Listener
	once sync.Once
}

func (c *conn) Close() error {
	c.once.Do(func() { c.l.active.Add(-1) })
	return c.Conn.Close()
}
