package main

import (
	"fmt"
	"log/slog"

	"github.com/berry-gateway/berry/controlplane/internal/auth"
	"github.com/berry-gateway/berry/controlplane/internal/console"
	"github.com/berry-gateway/berry/controlplane/internal/httpapi"
	"github.com/berry-gateway/berry/controlplane/internal/server"
	berryv1 "github.com/berry-gateway/berry/pkg/api/berry/v1"
	"google.golang.org/grpc"
)

// mountConsole serves, on the HTTP address, the admin and cluster APIs in the
// Connect protocol (through gs, so with its authorization, codecs and limits) and
// the web console that calls them. The edge stream stays on the gRPC port.
func mountConsole(log *slog.Logger, hs *httpapi.Server, httpListen string, gs *grpc.Server, policy *auth.Policy, insecure bool) error {
	err := hs.MountAPI(httpapi.APIOptions{
		GRPC:         gs,
		Services:     []string{berryv1.AdminService_ServiceDesc.ServiceName, berryv1.ClusterService_ServiceDesc.ServiceName},
		Auth:         policy,
		MaxBodyBytes: server.MaxConfigMessageSize,
		Open:         insecure,
	})
	if err != nil {
		return fmt.Errorf("--http-listen: %w", err)
	}
	if err := console.Register(hs); err != nil {
		return fmt.Errorf("--http-listen: %w", err)
	}
	if policy.Enabled() && !loopback(httpListen) {
		log.Warn("the admin API and console on --http-listen are PLAIN HTTP on a non-loopback address: tokens pasted into the console travel in clear; put a TLS-terminating proxy in front", "http_listen", httpListen)
	}
	return nil
}
