#!/usr/bin/env bash
# Builds Berry's binaries into OUT (default ./bin), stamped with their version and
# revision so that --version, berryctl version and berry_build_info say which build
# runs. VERSION and REVISION default to what git says of this checkout (the Dockerfile
# passes them in, as its build context has no .git).
#   scripts/build.sh [OUT]
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-bin}
version=${VERSION:-$(git describe --tags --always --dirty 2>/dev/null || echo dev)}
revision=${REVISION:-$(git rev-parse HEAD 2>/dev/null || true)}
pkg=github.com/berry-gateway/berry/pkg/buildinfo
mkdir -p "$out"
CGO_ENABLED=${CGO_ENABLED:-0} go build -trimpath \
  -ldflags "-s -w -X $pkg.version=$version -X $pkg.revision=$revision" \
  -o "$out/" ./controlplane/cmd/... ./edge/cmd/berry-edge ./cmd/berry-sim
echo "built $version ($revision) into $out/"
