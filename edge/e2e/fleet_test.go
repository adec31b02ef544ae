package e2e

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/berry-gateway/berry/edge/internal/cpsync"
	"github.com/berry-gateway/berry/edge/internal/serving"
	berryv1 "github.com/berry-gateway/berry/pkg/api/berry/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

// 100 edges (the real sync client and routing tables, in process) on one real control
// plane all ACK a new version, and FleetStatus shows it rolled out.
func TestHundredEdgesAckNewVersion(t *testing.T) {
	const n = 100
	cp := startSecuredCP(t, filepath.Join(t.TempDir(), "berry.db"), "")
	seed := configTOML("http://127.0.0.1:1/v1", "http://127.0.0.1:2/v1", "a")
	if _, err := cp.admin.ApplyConfig(context.Background(), &berryv1.ApplyConfigRequest{Source: &berryv1.ApplyConfigRequest_Toml{Toml: seed}}); err != nil {
		t.Fatal(err)
	}
	conn, err := grpc.NewClient(cp.addr, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithPerRPCCredentials(bearerCreds(edgeToken)))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	runtimes := make([]*serving.Runtime, n)
	clients := make([]*cpsync.Client, n)
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	for i := range n {
		runtimes[i] = &serving.Runtime{}
		c := &cpsync.Client{Conn: conn, EdgeID: fmt.Sprintf("fleet-%03d", i), BuildVersion: "e2e",
			ListenAddress: fmt.Sprintf("127.0.0.1:%d", 10000+i), Runtime: runtimes[i], Log: quiet}
		clients[i] = c
		wg.Add(1)
		go func() { defer wg.Done(); _ = c.Run(ctx) }()
	}
	waitRolledOut := func(v uint64) {
		t.Helper()
		eventually(t, fmt.Sprintf("all %d edges ACK version %d", n, v), func() error {
			fs, err := cp.admin.FleetStatus(context.Background(), &berryv1.FleetStatusRequest{})
			if err != nil {
				return err
			}
			acked := 0
			for _, e := range fs.Edges {
				if e.Connected && e.AppliedVersion == v && e.LastAckVersion == v && e.LastNack == "" {
					acked++
				}
			}
			if acked != n || !fs.RolledOut || fs.CurrentVersion != v {
				return fmt.Errorf("%d of %d ACKed, rolled_out=%v, current %d", acked, n, fs.RolledOut, fs.CurrentVersion)
			}
			return nil
		})
		for i, rt := range runtimes {
			if got, _ := rt.Applied(); got != v || !clients[i].Connected() {
				t.Fatalf("edge %d serves %d (connected %v), want %d", i, got, clients[i].Connected(), v)
			}
		}
	}
	waitRolledOut(1)
	start := time.Now()
	if _, err := cp.admin.UpdateSettings(context.Background(), &berryv1.UpdateSettingsRequest{Settings: &berryv1.Settings{MaxRetries: 1}}); err != nil {
		t.Fatal(err)
	}
	waitRolledOut(2)
	t.Logf("version 2 rolled out to %d edges within %v (includes polling)", n, time.Since(start).Round(time.Millisecond))
}
