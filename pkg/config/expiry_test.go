package config

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestParseExpiresAt(t *testing.T) {
	tests := []struct {
		name    string
		line    string
		want    time.Time // zero: no expiry
		wantErr string
	}{
		{"absent", "", time.Time{}, ""},
		{"offset date-time", "expires_at = 2027-01-02T03:04:05Z", time.Date(2027, 1, 2, 3, 4, 5, 0, time.UTC), ""},
		{"other offset", "expires_at = 2027-01-02T05:04:05+02:00", time.Date(2027, 1, 2, 3, 4, 5, 0, time.UTC), ""},
		{"not a date", `expires_at = "tomorrow"`, time.Time{}, "expires_at"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, _, err := ParseTOML([]byte(doc{user: tt.line}.String()))
			if tt.wantErr != "" {
				if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want ErrInvalid naming %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got := cfg.GetUsers()[0].GetExpiresAt()
			if tt.want.IsZero() {
				if got != nil {
					t.Fatalf("expires_at = %v, want none", got.AsTime())
				}
				return
			}
			if got == nil || !got.AsTime().Equal(tt.want) {
				t.Fatalf("expires_at = %v, want %v", got.AsTime(), tt.want)
			}
		})
	}
}
