#!/usr/bin/env bash
# Build the Pulumi CLI from its Go module (the official installer is unreachable here).
# Usage: build-pulumi-cli.sh VERSION OUT_DIR
set -euo pipefail
version=$1 out=$2
work=$(mktemp -d "${TMPDIR:-/tmp}/modelplane-pulumi-cli.XXXXXX")
trap 'rm -rf "$work"' EXIT
cd "$work"
export GOTOOLCHAIN=local GOFLAGS=-modcacherw CGO_ENABLED=0
cat > go.mod <<MOD
module modelplane.local/pulumi-cli

go 1.24

replace github.com/atotto/clipboard => github.com/tgummerer/clipboard v0.0.0-20241001131231-d02d263e614e
MOD
# The CLI's own go.mod replaces sdk/v3 by a relative path, so `go install pkg@version` is refused:
# require both modules at the same version from a wrapper module instead.
go get "github.com/pulumi/pulumi/pkg/v3/cmd/pulumi@v$version" "github.com/pulumi/pulumi/sdk/v3@v$version"
mkdir -p "$out"
go build -trimpath -tags osusergo,grpcnotrace \
  -ldflags "-s -w -X github.com/pulumi/pulumi/sdk/v3/go/common/version.Version=v$version" \
  -o "$out/pulumi" github.com/pulumi/pulumi/pkg/v3/cmd/pulumi
