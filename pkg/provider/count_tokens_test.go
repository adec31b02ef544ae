package provider

import "testing"

func TestEstimateTokens(t *testing.T) {
	tests := []struct {
		name string
		body string
		want int64
	}{
		{"empty object", `{}`, 0},
		{"model is not counted", `{"model":"claude-sonnet-4-5"}`, 0},
		{"one message", `{"model":"m","messages":[{"role":"user","content":"12345678"}]}`, (4+8+3)/4 + 4},
		{"system and tools count", `{"system":"abcd","tools":[{"name":"get","description":"abcd"}]}`, 3},
		{"not json", `abcdefgh`, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := EstimateTokens([]byte(tt.body)); got != tt.want {
				t.Errorf("EstimateTokens(%s) = %d, want %d", tt.body, got, tt.want)
			}
		})
	}
}
