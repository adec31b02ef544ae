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
