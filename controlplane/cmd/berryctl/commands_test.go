package main

import (
	"bytes"
	"context"
	"strings"
	"testing"

	berryv1 "github.com/berry-gateway/berry/pkg/api/berry/v1"
	"google.golang.org/grpc"
)

// fakeAdmin answers the read RPCs the tables show; any other call panics.
type fakeAdmin struct {
	berryv1.AdminServiceClient
	scores *berryv1.GetScoresResponse
}

func (f fakeAdmin) GetScores(context.Context, *berryv1.GetScoresRequest, ...grpc.CallOption) (*berryv1.GetScoresResponse, error) {
	return f.scores, nil
}

// Decayed counts below 0.05 must not print as 0.0 beside the latencies they weigh.
func TestScoresTableShowsSmallCounts(t *testing.T) {
	tests := []struct {
		name  string
		score *berryv1.BackendScore
		want  []string // SAMPLES, ERRORS, REQUESTS, 4XX, 5XX, NO ANSWER
	}{
		{"decayed to almost nothing", &berryv1.BackendScore{LatencySeconds: 0.2, Weight: 0.04, Requests: 0.001, ErrorRate: 0.0004, ServerErrors: 0.0000004},
			[]string{"<0.1", "<0.1%", "<0.1", "0", "<0.1", "0"}},
		{"rounds up to one decimal", &berryv1.BackendScore{LatencySeconds: 0.2, Weight: 0.05, Requests: 0.96, ErrorRate: 0.5, ClientErrors: 0.25},
			[]string{"0.1", "50.0%", "1.0", "0.2", "0", "0"}},
		{"large", &berryv1.BackendScore{LatencySeconds: 0.2, Weight: 1234.56, Requests: 20, ErrorRate: 0.25, ServerErrors: 4, NoAnswer: 1},
			[]string{"1234.6", "25.0%", "20.0", "0", "4.0", "1.0"}},
		{"nothing observed", &berryv1.BackendScore{}, []string{"0", "0%", "0", "0", "0", "0"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.score.Provider, tt.score.UpstreamModel = "p", "m"
			var out bytes.Buffer
			c := &cli{o: &opts{output: "table"}, out: &out,
				admin: fakeAdmin{scores: &berryv1.GetScoresResponse{Backends: []*berryv1.BackendScore{tt.score}}}}
			if err := c.scores(context.Background(), ""); err != nil {
				t.Fatal(err)
			}
			lines := strings.Split(strings.TrimSpace(out.String()), "\n")
			row := strings.Fields(lines[len(lines)-1])
			// BACKEND LATENCY TTFT SAMPLES EDGES ERRORS REQUESTS 4XX 5XX NO-ANSWER HEALTH OWNER
			got := []string{row[3], row[5], row[6], row[7], row[8], row[9]}
			if strings.Join(got, " ") != strings.Join(tt.want, " ") {
				t.Fatalf("SAMPLES ERRORS REQUESTS 4XX 5XX NO-ANSWER = %v, want %v\n%s", got, tt.want, out.String())
			}
		})
	}
}
