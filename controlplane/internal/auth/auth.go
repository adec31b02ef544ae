// Package auth decides who may call which control-plane RPC. Callers present
// "authorization: Bearer <token>" metadata; each configured token carries a role:
// admin may call everything, read only the admin API's read RPCs, edge only the edge
// API. Health checks and server reflection are open, so load balancers and grpcurl
// need no credentials to find out whether and what the server serves.
//
// A call is checked before gRPC reads any of its messages, so a caller without the
// right token cannot make the server read or decode a request body: the stream
// interceptor runs before a stream handler reads, and Guard wraps each unary handler
// of a service, because grpc-go's generated unary handlers decode the request before
// they call the unary interceptor. (A tap handle would refuse even earlier, but
// grpc-go never cancels the context of a call its tap refuses: each refused call
// carrying a grpc-timeout would hold a timer until that deadline.)
package auth

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
)

// Role is what a credential may do.
type Role int

const (
	// RoleNone is an unauthenticated caller.
	RoleNone Role = iota
	// RoleEdge may only call EdgeService.
	RoleEdge
	// RoleRead may call the admin API's read RPCs.
	RoleRead
	// RoleAdmin may call everything.
	RoleAdmin
)

func (r Role) String() string {
	switch r {
	case RoleEdge:
		return "edge"
	case RoleRead:
		return "read"
	case RoleAdmin:
		return "admin"
	}
	return "none"
}

// Credential is one accepted token. Name is what versions record as their author;
// the token itself is never logged or stored.
type Credential struct {
	Name  string
	Role  Role
	Token string
}

// Identity is the authenticated caller of an RPC.
type Identity struct {
	Name string
	Role Role
}

type identityKey struct{}

// NewContext returns ctx carrying id as its caller: how the interceptors record who
// calls, and how the control plane's own writes (bootstrap) name their author.
func NewContext(ctx context.Context, id Identity) context.Context {
	return context.WithValue(ctx, identityKey{}, id)
}

// FromContext returns the caller's identity set by the interceptors. Without
// interceptors (or with no credentials configured) callers are anonymous admins.
func FromContext(ctx context.Context) Identity {
	if id, ok := ctx.Value(identityKey{}).(Identity); ok {
		return id
	}
	return anonymous(ctx)
}

func anonymous(ctx context.Context) Identity {
	name := "anonymous"
	if p, ok := peer.FromContext(ctx); ok && p.Addr != nil {
		name += "@" + p.Addr.String()
	}
	return Identity{Name: name, Role: RoleAdmin}
}

// Policy holds the accepted credentials and which role each method needs. The zero
// value accepts every caller as an anonymous admin: the unauthenticated mode, which
// the binary allows only on loopback or with --insecure.
type Policy struct {
	creds []hashedCredential
	// ReadMethods are the full method names (/pkg.Service/Method) a read credential
	// may call.
	readMethods map[string]bool
}

type hashedCredential struct {
	Identity
	sum [sha256.Size]byte
}

// NewPolicy returns a policy accepting creds (those with an empty token are skipped)
// and allowing the read role to call readMethods.
func NewPolicy(creds []Credential, readMethods []string) *Policy {
	p := &Policy{readMethods: make(map[string]bool, len(readMethods))}
	for _, c := range creds {
		if c.Token == "" {
			continue
		}
		p.creds = append(p.creds, hashedCredential{Identity: Identity{Name: c.Name, Role: c.Role}, sum: sha256.Sum256([]byte(c.Token))})
	}
	for _, m := range readMethods {
		p.readMethods[m] = true
	}
	return p
}

// Enabled reports whether any credential is configured.
func (p *Policy) Enabled() bool { return p != nil && len(p.creds) > 0 }

// authenticate finds the credential matching the request's bearer token. Every
// configured credential is compared, in constant time over equal-length hashes, so
// timing says nothing about which token (or how much of one) matched.
func (p *Policy) authenticate(md metadata.MD) (Identity, error) {
	var token string
	for _, v := range md.Get("authorization") {
		if len(v) > 7 && strings.EqualFold(v[:7], "bearer ") {
			token = strings.TrimSpace(v[7:])
			break
		}
	}
	if token == "" {
		return Identity{}, status.Error(codes.Unauthenticated, "missing credentials: send metadata \"authorization: Bearer <token>\"")
	}
	sum := sha256.Sum256([]byte(token))
	var found Identity
	ok := 0
	for _, c := range p.creds {
		eq := subtle.ConstantTimeCompare(sum[:], c.sum[:])
		if eq == 1 && ok == 0 {
			found = c.Identity
		}
		ok |= eq
	}
	if ok == 0 {
		return Identity{}, status.Error(codes.Unauthenticated, "invalid token")
	}
	return found, nil
}

// open methods need no credentials.
func open(method string) bool {
	return strings.HasPrefix(method, "/grpc.health.v1.Health/") ||
		strings.HasPrefix(method, "/grpc.reflection.")
}

func (p *Policy) allowed(id Identity, method string) bool {
	switch id.Role {
	case RoleAdmin:
		return true
	case RoleRead:
		return p.readMethods[method]
	case RoleEdge:
		return strings.HasPrefix(method, "/berry.v1.EdgeService/")
	}
	return false
}

// check returns ctx carrying the identity of the caller of method, whose headers are
// md, or the status refusing the call.
func (p *Policy) check(ctx context.Context, md metadata.MD, method string) (context.Context, error) {
	if open(method) {
		return ctx, nil
	}
	if !p.Enabled() {
		return NewContext(ctx, anonymous(ctx)), nil
	}
	id, err := p.authenticate(md)
	if err != nil {
		return nil, err
	}
	if !p.allowed(id, method) {
		return nil, status.Errorf(codes.PermissionDenied, "the %s role may not call %s", id.Role, method)
	}
	return NewContext(ctx, id), nil
}

// Authorize checks a call to method (a full method name, /pkg.Service/Method) whose
// headers are md exactly as the gRPC server does, for a front end that must refuse a
// call before it reads the request: the HTTP transcoder reads a whole body before the
// gRPC server sees the call. The gRPC server checks the call again when it arrives.
func (p *Policy) Authorize(ctx context.Context, md metadata.MD, method string) error {
	_, err := p.check(ctx, md, method)
	return err
}

// admittedKey marks a context Guard admitted; its value is the method admitted.
type admittedKey struct{}

// Guard returns a copy of desc whose unary handlers check their call before they
// decode its request, and put the caller's identity in the context; the interceptors
// then find the call admitted and check nothing twice. Streaming handlers are left to
// the stream interceptor, which runs before they read.
func (p *Policy) Guard(desc *grpc.ServiceDesc) *grpc.ServiceDesc {
	g := *desc
	g.Methods = make([]grpc.MethodDesc, len(desc.Methods))
	for i, m := range desc.Methods {
		method, handler := "/"+desc.ServiceName+"/"+m.MethodName, m.Handler
		g.Methods[i] = grpc.MethodDesc{MethodName: m.MethodName, Handler: func(srv any, ctx context.Context, dec func(any) error, ic grpc.UnaryServerInterceptor) (any, error) {
			ctx, err := p.admit(ctx, method)
			if err != nil {
				return nil, err
			}
			return handler(srv, context.WithValue(ctx, admittedKey{}, method), dec, ic)
		}}
	}
	return &g
}

// admit returns the context of a call to method, carrying the caller's identity: as
// Guard left it when Guard admitted this call, else checked here.
func (p *Policy) admit(ctx context.Context, method string) (context.Context, error) {
	if m, ok := ctx.Value(admittedKey{}).(string); ok && m == method {
		return ctx, nil
	}
	md, _ := metadata.FromIncomingContext(ctx)
	return p.check(ctx, md, method)
}

// Unary is the unary server interceptor.
func (p *Policy) Unary(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	ctx, err := p.admit(ctx, info.FullMethod)
	if err != nil {
		return nil, err
	}
	return handler(ctx, req)
}

// Stream is the stream server interceptor.
func (p *Policy) Stream(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	ctx, err := p.admit(ss.Context(), info.FullMethod)
	if err != nil {
		return err
	}
	return handler(srv, &identityStream{ServerStream: ss, ctx: ctx})
}

type identityStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (s *identityStream) Context() context.Context { return s.ctx }
