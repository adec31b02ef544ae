package routing

import (
	"testing"
	"time"

	"github.com/berry-gateway/berry/edge/internal/backends"
	berryv1 "github.com/berry-gateway/berry/pkg/api/berry/v1"
	"github.com/berry-gateway/berry/pkg/config"
	"google.golang.org/protobuf/types/known/timestamppb"
)

func TestUserUsable(t *testing.T) {
	now := time.Date(2027, 1, 1, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		name    string
		enabled bool
		expires *timestamppb.Timestamp
		want    bool
	}{
		{"enabled, no expiry", true, nil, true},
		{"disabled", false, nil, false},
		{"not yet expired", true, timestamppb.New(now.Add(time.Second)), true},
		{"expires now", true, timestamppb.New(now), false},
		{"expired", true, timestamppb.New(now.Add(-time.Hour)), false},
		{"disabled and not expired", false, timestamppb.New(now.Add(time.Hour)), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := &berryv1.Config{Users: []*berryv1.User{
				{Id: "u", TokenSha256: config.HashToken("tok"), Enabled: tt.enabled, ExpiresAt: tt.expires},
			}}
			config.Normalize(cfg) // settings defaults
			tb, err := Build(&berryv1.Snapshot{Version: 1, Config: cfg}, Registries{Backends: &backends.Registry{}})
			if err != nil {
				t.Fatal(err)
			}
			u := tb.UserByToken([]byte("tok"))
			if u == nil {
				t.Fatal("user not found")
			}
			if got := u.Usable(now); got != tt.want {
				t.Fatalf("Usable = %v, want %v", got, tt.want)
			}
		})
	}
}
