package e2e

import (
	"os/exec"
	"strings"
	"testing"
)

// TestComposeFileValidates runs docker-compose's own check of docker-compose.yml (no
// Docker engine needed), as is and with the cluster profile, and looks for what keeps
// the fleet's start and stop orderly and what makes the profile's three members one
// cluster. .ci/tools installs docker-compose from Debian's packages.
func TestComposeFileValidates(t *testing.T) {
	if _, err := exec.LookPath("docker-compose"); err != nil {
		t.Skip("docker-compose not installed: run `bash .ci/tools` as root (Debian's docker-compose package), or `docker-compose -f docker-compose.yml config` by hand")
	}
	common := []string{
		"condition: service_healthy", // edges wait for the control plane, nginx for the edges
		"stop_grace_period: 130s",    // the edges' drain fits
		"berry-edge", "healthcheck",
		"/var/cache/berry", "/prometheus", "/data",
		"restart: unless-stopped",
	}
	tests := []struct {
		name string
		args []string
		want []string
	}{
		{"default", nil, common},
		{"cluster profile", []string{"--profile", "cluster"}, append([]string{
			// One bootstrap list on every member, each its own node id and addresses.
			"--peers=n1=cp-1:7001,n2=cp-2:7001,n3=cp-3:7001",
			"- n1", "- n2", "- n3",
			"- cp-1:7001", "- cp-2:7001", "- cp-3:7001",
			"- cp-1:9090", "- cp-2:9090", "- cp-3:9090", // --grpc-advertise: where writes are forwarded
			"--raft-secret-file", "/run/secrets/raft-secret", "raft-secret.demo",
			"cp-1-data:/data", "cp-2-data:/data", "cp-3-data:/data",
			"- cp-1:9090,cp-2:9090,cp-3:9090", // the edge follows whichever member answers
		}, common...)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			args := append([]string{"-f", "../../docker-compose.yml"}, tc.args...)
			out, err := exec.Command("docker-compose", append(args, "config")...).CombinedOutput()
			if err != nil {
				t.Fatalf("docker-compose config: %v\n%s", err, out)
			}
			cfg := string(out)
			for _, want := range tc.want {
				if !strings.Contains(cfg, want) {
					t.Errorf("the resolved compose file lacks %q:\n%s", want, cfg)
				}
			}
		})
	}
}
