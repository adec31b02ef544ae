package e2e

import (
	"os/exec"
	"strings"
	"testing"
)

// TestComposeFileValidates runs docker-compose's own check of docker-compose.yml (no
// Docker engine needed) and looks for what keeps the fleet's start and stop orderly.
// .ci/tools installs docker-compose from Debian's packages.
func TestComposeFileValidates(t *testing.T) {
	if _, err := exec.LookPath("docker-compose"); err != nil {
		t.Skip("docker-compose not installed: run `bash .ci/tools` as root (Debian's docker-compose package), or `docker-compose -f docker-compose.yml config` by hand")
	}
	out, err := exec.Command("docker-compose", "-f", "../../docker-compose.yml", "config").CombinedOutput()
	if err != nil {
		t.Fatalf("docker-compose config: %v\n%s", err, out)
	}
	cfg := string(out)
	for _, want := range []string{
		"condition: service_healthy", // edges wait for the control plane, nginx for the edges
		"stop_grace_period: 130s",    // the edges' drain fits
		"berry-edge", "healthcheck",
		"/var/cache/berry", "/prometheus", "/data",
		"restart: unless-stopped",
	} {
		if !strings.Contains(cfg, want) {
			t.Errorf("the resolved compose file lacks %q:\n%s", want, cfg)
		}
	}
}
