package server

import (
	"errors"
	"fmt"

	"github.com/berry-gateway/berry/controlplane/internal/auth"
	berryv1 "github.com/berry-gateway/berry/pkg/api/berry/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/encoding"
	grpcproto "google.golang.org/grpc/encoding/proto"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/mem"
	"google.golang.org/grpc/reflection"
	"google.golang.org/protobuf/proto"
)

// Receive limits. Only the requests that carry a whole config (ApplyConfig,
// ImportConfig, ValidateConfig) may be large; every other message the control plane
// receives is small.
const (
	// MaxConfigMessageSize is the largest ApplyConfig, ImportConfig or ValidateConfig
	// request.
	MaxConfigMessageSize = 64 << 20
	// MaxMessageSize is the largest of every other message.
	MaxMessageSize = 4 << 20
	// maxHeaderListSize bounds the headers of a call, read before anything can be
	// checked (grpc-go's default is 16 MiB); a bearer token needs far less.
	maxHeaderListSize = 16 << 10
)

// NewGRPCServer returns a gRPC server serving s, every call checked by p before any
// of its messages is read (see auth.Policy.Guard), with opts (credentials, keepalives)
// added. It serves the admin and edge services, the standard health service (for
// load balancers) and server reflection (for grpcurl and other generic clients).
func (s *Server) NewGRPCServer(p *auth.Policy, opts ...grpc.ServerOption) *grpc.Server {
	gs := grpc.NewServer(append([]grpc.ServerOption{
		grpc.ChainUnaryInterceptor(p.Unary, s.forward),
		grpc.ChainStreamInterceptor(p.Stream),
		// grpc-go has one receive limit per server, and the configs need it.
		grpc.MaxRecvMsgSize(MaxConfigMessageSize),
		grpc.ForceServerCodecV2(limitCodec{encoding.GetCodecV2(grpcproto.Name)}),
		grpc.MaxHeaderListSize(maxHeaderListSize),
		grpc.StatsHandler(grpcStats{s.metrics}),
	}, opts...)...)
	gs.RegisterService(p.Guard(&berryv1.AdminService_ServiceDesc), s.admin)
	gs.RegisterService(p.Guard(&berryv1.EdgeService_ServiceDesc), s.edge)
	gs.RegisterService(p.Guard(&berryv1.ClusterService_ServiceDesc), s.clusterSvc)
	healthpb.RegisterHealthServer(gs, s.health)
	reflection.Register(gs)
	s.metrics.learnMethods(gs)
	return gs
}

// errTooLarge is why limitCodec refuses a message.
var errTooLarge = errors.New("message too large")

// limitCodec is gRPC's proto codec, which refuses a message over its type's limit
// before decoding any of it: the server's receive limit must let a whole config
// through, and only the codec knows which message it is reading. grpc-go reports a
// codec's error to the caller as INTERNAL, with this error's text.
type limitCodec struct{ encoding.CodecV2 }

// Unmarshal implements encoding.CodecV2.
func (c limitCodec) Unmarshal(data mem.BufferSlice, v any) error {
	if n, limit := data.Len(), recvLimit(v); n > limit {
		return fmt.Errorf("%s of %d bytes is over its limit of %d bytes: %w", messageName(v), n, limit, errTooLarge)
	}
	return c.CodecV2.Unmarshal(data, v)
}

func recvLimit(v any) int {
	switch v.(type) {
	case *berryv1.ApplyConfigRequest, *berryv1.ImportConfigRequest, *berryv1.ValidateConfigRequest:
		return MaxConfigMessageSize
	}
	return MaxMessageSize
}

func messageName(v any) string {
	if m, ok := v.(proto.Message); ok {
		return string(m.ProtoReflect().Descriptor().FullName())
	}
	return fmt.Sprintf("%T", v)
}
