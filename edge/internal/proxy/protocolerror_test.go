package proxy

import (
	"encoding/json"
	"errors"
	"net"
	"os"
	"testing"

	"github.com/valyala/fasthttp"
)

func TestWriteProtocolError(t *testing.T) {
	tests := []struct {
		name   string
		err    error
		status int
	}{
		{"body too large", fasthttp.ErrBodyTooLarge, fasthttp.StatusRequestEntityTooLarge},
		{"headers too large", &fasthttp.ErrSmallBuffer{}, fasthttp.StatusRequestHeaderFieldsTooLarge},
		{"read timeout", &net.OpError{Op: "read", Net: "tcp", Err: os.ErrDeadlineExceeded}, fasthttp.StatusRequestTimeout},
		{"garbage", errors.New("cannot parse request line"), fasthttp.StatusBadRequest},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var ctx fasthttp.RequestCtx
			WriteProtocolError(&ctx, tt.err)
			if got := ctx.Response.StatusCode(); got != tt.status {
				t.Errorf("status = %d, want %d", got, tt.status)
			}
			var body struct {
				Error struct{ Message, Type, Code string } `json:"error"`
			}
			if err := json.Unmarshal(ctx.Response.Body(), &body); err != nil || body.Error.Message == "" || body.Error.Type == "" {
				t.Errorf("body %q is not an OpenAI error (%v)", ctx.Response.Body(), err)
			}
		})
	}
}
