package e2e

import (
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
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
			checkComposeFlags(t, out)
		})
	}
}

// checkComposeFlags gives the binaries built from this tree each Berry service's
// command line with --help at the end: every flag before it is parsed, so one the
// binary does not know fails here rather than in a container.
func checkComposeFlags(t *testing.T, resolved []byte) {
	t.Helper()
	var cfg struct {
		Services map[string]struct {
			Entrypoint []string
			Command    []string
		}
	}
	if err := yaml.Unmarshal(resolved, &cfg); err != nil {
		t.Fatalf("the resolved compose file is not YAML: %v", err)
	}
	checked := 0
	for name, svc := range cfg.Services {
		if len(svc.Entrypoint) != 1 || (svc.Entrypoint[0] != "berry-edge" && svc.Entrypoint[0] != "berry-controlplane") {
			continue
		}
		out, err := exec.Command(filepath.Join(binDir, svc.Entrypoint[0]), append(slices.Clone(svc.Command), "--help")...).CombinedOutput()
		if err != nil {
			t.Errorf("service %s: %s %v: %v\n%s", name, svc.Entrypoint[0], svc.Command, err, out)
		}
		checked++
	}
	if checked == 0 {
		t.Fatal("no service runs berry-edge or berry-controlplane")
	}
}
