package proxy

import (
	"crypto/rand"
	"encoding/hex"
	"strconv"
	"sync/atomic"

	"github.com/valyala/fasthttp"
)

// maxRequestID bounds a request id a client may send.
const maxRequestID = 128

// requestIDs makes request ids: this process's random prefix and a counter, unique
// across a fleet without coordination and made without allocating.
type requestIDs struct {
	prefix [16]byte
	n      atomic.Uint64
}

// init draws the process's prefix.
func (ids *requestIDs) init() {
	var b [8]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails on supported platforms
	hex.Encode(ids.prefix[:], b[:])
}

// of returns ctx's request id appended to dst: the client's X-Request-Id when it is a
// short run of safe characters (so it can go into logs, headers and traces as is),
// else a new one.
func (ids *requestIDs) of(ctx *fasthttp.RequestCtx, dst []byte) []byte {
	if id := ctx.Request.Header.Peek("X-Request-Id"); validRequestID(id) {
		return append(dst, id...)
	}
	dst = append(dst, ids.prefix[:]...)
	dst = append(dst, '-')
	return strconv.AppendUint(dst, ids.n.Add(1), 36)
}

func validRequestID(id []byte) bool {
	if len(id) == 0 || len(id) > maxRequestID {
		return false
	}
	for _, c := range id {
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '-', c == '_', c == '.', c == ':':
		default:
			return false
		}
	}
	return true
}
