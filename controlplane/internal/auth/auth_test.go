package auth

import (
	"context"
	"net"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
)

func TestPolicyCheck(t *testing.T) {
	p := NewPolicy([]Credential{
		{Name: "admin", Role: RoleAdmin, Token: "a-token"},
		{Name: "read", Role: RoleRead, Token: "r-token"},
		{Name: "unset", Role: RoleAdmin, Token: ""}, // skipped: no empty token ever matches
	}, []string{"/berry.v1.AdminService/GetConfig"})
	tests := []struct {
		name     string
		auth     []string
		method   string
		want     codes.Code
		wantName string
	}{
		{"admin", []string{"Bearer a-token"}, "/berry.v1.AdminService/ApplyConfig", codes.OK, "admin"},
		{"scheme is case-insensitive", []string{"bearer a-token"}, "/berry.v1.AdminService/ApplyConfig", codes.OK, "admin"},
		{"read on a read method", []string{"Bearer r-token"}, "/berry.v1.AdminService/GetConfig", codes.OK, "read"},
		{"read on a write", []string{"Bearer r-token"}, "/berry.v1.AdminService/ApplyConfig", codes.PermissionDenied, ""},
		{"read on the edge stream", []string{"Bearer r-token"}, "/berry.v1.EdgeService/Sync", codes.PermissionDenied, ""},
		{"empty bearer", []string{"Bearer "}, "/berry.v1.AdminService/GetConfig", codes.Unauthenticated, ""},
		{"basic auth", []string{"Basic a-token"}, "/berry.v1.AdminService/GetConfig", codes.Unauthenticated, ""},
		{"none", nil, "/berry.v1.AdminService/GetConfig", codes.Unauthenticated, ""},
		{"health is open", nil, "/grpc.health.v1.Health/Check", codes.OK, ""},
		{"reflection is open", nil, "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo", codes.OK, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			if tt.auth != nil {
				ctx = metadata.NewIncomingContext(ctx, metadata.MD{"authorization": tt.auth})
			}
			var got Identity
			_, err := p.Unary(ctx, nil, &grpc.UnaryServerInfo{FullMethod: tt.method}, func(ctx context.Context, _ any) (any, error) {
				got = FromContext(ctx)
				return nil, nil
			})
			if status.Code(err) != tt.want {
				t.Fatalf("code %v (%v), want %v", status.Code(err), err, tt.want)
			}
			if tt.wantName != "" && got.Name != tt.wantName {
				t.Fatalf("identity %q, want %q", got.Name, tt.wantName)
			}
		})
	}
}

func TestZeroPolicyIsAnonymousAdmin(t *testing.T) {
	var p Policy
	if p.Enabled() {
		t.Fatal("zero policy enabled")
	}
	ctx := peer.NewContext(context.Background(), &peer.Peer{Addr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 5}})
	var got Identity
	_, err := p.Unary(ctx, nil, &grpc.UnaryServerInfo{FullMethod: "/berry.v1.AdminService/ApplyConfig"}, func(ctx context.Context, _ any) (any, error) {
		got = FromContext(ctx)
		return nil, nil
	})
	if err != nil || got.Role != RoleAdmin || got.Name != "anonymous@127.0.0.1:5" {
		t.Fatalf("identity %+v, err %v", got, err)
	}
}

func TestNewContextNamesTheCaller(t *testing.T) {
	want := Identity{Name: "bootstrap", Role: RoleAdmin}
	if got := FromContext(NewContext(context.Background(), want)); got != want {
		t.Fatalf("FromContext = %+v, want %+v", got, want)
	}
}

// Guard checks a unary call before its handler decodes the request, and the
// interceptor then finds the call admitted.
func TestGuard(t *testing.T) {
	p := NewPolicy([]Credential{
		{Name: "admin", Role: RoleAdmin, Token: "a-token"},
		{Name: "read", Role: RoleRead, Token: "r-token"},
	}, []string{"/berry.v1.AdminService/Get"})
	var decoded bool
	var got Identity
	desc := &grpc.ServiceDesc{ServiceName: "berry.v1.AdminService", HandlerType: (*any)(nil), Methods: []grpc.MethodDesc{
		{MethodName: "Get", Handler: handlerOf("/berry.v1.AdminService/Get", &decoded, &got)},
		{MethodName: "Put", Handler: handlerOf("/berry.v1.AdminService/Put", &decoded, &got)},
	}}
	guarded := p.Guard(desc)
	// The generated descriptors are shared: Guard must leave its argument alone.
	_, _ = desc.Methods[0].Handler(nil, context.Background(), func(any) error { decoded = true; return nil }, p.Unary)
	if !decoded {
		t.Fatal("Guard changed its argument")
	}
	tests := []struct {
		name   string
		auth   []string
		method int
		want   codes.Code
	}{
		{"admin", []string{"Bearer a-token"}, 1, codes.OK},
		{"read on a read method", []string{"Bearer r-token"}, 0, codes.OK},
		{"read on a write", []string{"Bearer r-token"}, 1, codes.PermissionDenied},
		{"no token", nil, 0, codes.Unauthenticated},
		{"wrong token", []string{"Bearer nope"}, 0, codes.Unauthenticated},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			decoded, got = false, Identity{}
			ctx := metadata.NewIncomingContext(context.Background(), metadata.MD{"authorization": tt.auth})
			_, err := guarded.Methods[tt.method].Handler(nil, ctx, func(any) error { decoded = true; return nil }, p.Unary)
			if status.Code(err) != tt.want {
				t.Fatalf("code %v (%v), want %v", status.Code(err), err, tt.want)
			}
			if decoded != (tt.want == codes.OK) {
				t.Fatalf("request decoded %v for a call with code %v", decoded, tt.want)
			}
			if tt.want == codes.OK && got.Role == RoleNone {
				t.Fatal("no identity reached the handler")
			}
		})
	}
}

// The interceptor does not check again a call Guard admitted: here it would fail, as
// the metadata is gone.
func TestGuardedCallIsNotCheckedTwice(t *testing.T) {
	p := NewPolicy([]Credential{{Name: "admin", Role: RoleAdmin, Token: "a-token"}}, nil)
	var got Identity
	desc := &grpc.ServiceDesc{ServiceName: "berry.v1.AdminService", HandlerType: (*any)(nil), Methods: []grpc.MethodDesc{
		{MethodName: "Put", Handler: func(_ any, ctx context.Context, _ func(any) error, _ grpc.UnaryServerInterceptor) (any, error) {
			ctx = metadata.NewIncomingContext(ctx, nil)
			return p.Unary(ctx, nil, &grpc.UnaryServerInfo{FullMethod: "/berry.v1.AdminService/Put"}, func(ctx context.Context, _ any) (any, error) {
				got = FromContext(ctx)
				return nil, nil
			})
		}},
	}}
	ctx := metadata.NewIncomingContext(context.Background(), metadata.Pairs("authorization", "Bearer a-token"))
	if _, err := p.Guard(desc).Methods[0].Handler(nil, ctx, nil, nil); err != nil || got.Name != "admin" {
		t.Fatalf("identity %+v, err %v", got, err)
	}
	// Admitted for one method says nothing of another.
	admitted := context.WithValue(context.Background(), admittedKey{}, "/berry.v1.AdminService/Put")
	_, err := p.Unary(admitted, nil, &grpc.UnaryServerInfo{FullMethod: "/berry.v1.AdminService/Other"},
		func(context.Context, any) (any, error) { return nil, nil })
	if status.Code(err) != codes.Unauthenticated {
		t.Fatalf("a call to another method without a token: %v, want Unauthenticated", err)
	}
}

// handlerOf is a unary handler shaped like generated code: it decodes, then calls the
// interceptor, whose handler records the caller.
func handlerOf(method string, decoded *bool, got *Identity) func(any, context.Context, func(any) error, grpc.UnaryServerInterceptor) (any, error) {
	return func(srv any, ctx context.Context, dec func(any) error, ic grpc.UnaryServerInterceptor) (any, error) {
		if err := dec(nil); err != nil {
			return nil, err
		}
		return ic(ctx, nil, &grpc.UnaryServerInfo{FullMethod: method}, func(ctx context.Context, _ any) (any, error) {
			*got = FromContext(ctx)
			return nil, nil
		})
	}
}
