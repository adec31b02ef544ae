package server

import (
	"context"
	"net"
	"strings"
	"sync/atomic"
	"testing"

	berryv1 "github.com/berry-gateway/berry/pkg/api/berry/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
)

// countingListener counts the bytes the server reads from all its connections.
type countingListener struct {
	net.Listener
	read atomic.Int64
}

func (l *countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &countingConn{Conn: c, read: &l.read}, nil
}

type countingConn struct {
	net.Conn
	read *atomic.Int64
}

func (c *countingConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.read.Add(int64(n))
	return n, err
}

// padded returns m with n bytes of unknown field added: a message of about n bytes
// the server decodes like any other of its type.
func padded[M proto.Message](m M, n int) M {
	m.ProtoReflect().SetUnknown(protowire.AppendBytes(protowire.AppendTag(nil, 999, protowire.BytesType), make([]byte, n)))
	return m
}

// A caller may not make the control plane read a request body it may not send, nor
// decode more than MaxMessageSize of anything but a whole config.
func TestRequestsAreCheckedBeforeTheyAreRead(t *testing.T) {
	lis := &countingListener{}
	h := startListener(t, Options{}, func(l net.Listener) net.Listener { lis.Listener = l; return lis })
	h.seed(t)
	const huge = 32 << 20
	bigTOML := seed + "\n#" + strings.Repeat("x", 5<<20) + "\n" // 5 MiB: over MaxMessageSize, a valid config
	apply := func(toml string) func(context.Context, *grpc.ClientConn) error {
		return func(ctx context.Context, c *grpc.ClientConn) error {
			_, err := berryv1.NewAdminServiceClient(c).ApplyConfig(ctx, &berryv1.ApplyConfigRequest{Source: &berryv1.ApplyConfigRequest_Toml{Toml: toml}})
			return err
		}
	}
	getConfig := func(pad int) func(context.Context, *grpc.ClientConn) error {
		return func(ctx context.Context, c *grpc.ClientConn) error {
			_, err := berryv1.NewAdminServiceClient(c).GetConfig(ctx, padded(&berryv1.GetConfigRequest{}, pad))
			return err
		}
	}
	sync := func(pad int) func(context.Context, *grpc.ClientConn) error {
		return func(ctx context.Context, c *grpc.ClientConn) error {
			st, err := berryv1.NewEdgeServiceClient(c).Sync(ctx)
			if err != nil {
				return err
			}
			hello := &berryv1.SyncRequest{Kind: &berryv1.SyncRequest_Hello{Hello: &berryv1.Hello{EdgeId: "e"}}}
			_ = st.Send(padded(hello, pad)) // the status comes from Recv
			_, err = st.Recv()
			return err
		}
	}
	tests := []struct {
		name    string
		token   string
		md      metadata.MD
		call    func(context.Context, *grpc.ClientConn) error
		want    codes.Code
		wantMsg string
		maxRead int64 // bytes the server may read during the call; 0: unbounded
	}{
		{"no token, huge config", "", nil, apply(strings.Repeat("x", huge)), codes.Unauthenticated, "", 1 << 20},
		{"wrong token, huge config", "nope", nil, apply(strings.Repeat("x", huge)), codes.Unauthenticated, "", 1 << 20},
		{"read role, huge config", readTok, nil, apply(strings.Repeat("x", huge)), codes.PermissionDenied, "", 1 << 20},
		{"edge role, huge config", edgeTok, nil, apply(strings.Repeat("x", huge)), codes.PermissionDenied, "", 1 << 20},
		{"no token, huge hello", "", nil, sync(huge), codes.Unauthenticated, "", 1 << 20},
		{"read role, huge hello", readTok, nil, sync(huge), codes.PermissionDenied, "", 1 << 20},
		{"huge headers", adminTok, metadata.Pairs("x-pad", strings.Repeat("x", 1<<20)), getConfig(0), codes.Internal, "header list size", 0},
		{"read role, small request", readTok, nil, getConfig(1 << 10), codes.OK, "", 0},
		{"read role, request over the limit", readTok, nil, getConfig(MaxMessageSize), codes.Internal, "berry.v1.GetConfigRequest of 4194", 0},
		{"edge role, hello over the limit", edgeTok, nil, sync(MaxMessageSize), codes.Internal, "berry.v1.SyncRequest of 4194", 0},
		{"admin, config over the small limit", adminTok, nil, apply(bigTOML), codes.OK, "", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			conn := h.conn(t, tt.token)
			defer conn.Close()
			ctx := ctxT(t)
			if tt.md != nil {
				ctx = metadata.NewOutgoingContext(ctx, tt.md)
			}
			before := lis.read.Load()
			err := tt.call(ctx, conn)
			read := lis.read.Load() - before
			if status.Code(err) != tt.want || !strings.Contains(status.Convert(err).Message(), tt.wantMsg) {
				t.Fatalf("code %v (%v), want %v with %q", status.Code(err), err, tt.want, tt.wantMsg)
			}
			if tt.maxRead > 0 && read > tt.maxRead {
				t.Fatalf("the server read %d bytes for a call it refused, want at most %d", read, tt.maxRead)
			}
		})
	}
}
