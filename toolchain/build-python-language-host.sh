#!/usr/bin/env bash
# Build Modelplane's Python language host (toolchain/python-language-host) and put beside it the
# two scripts the engine needs from the Pulumi SDK module: pulumi-language-python-exec (runs a
# program) and pulumi-resource-pulumi-python (runs dynamic providers).
# Usage: build-python-language-host.sh SDK_VERSION OUT_DIR
set -euo pipefail
version=$1 out=$2
src=$(cd "$(dirname "$0")/python-language-host" && pwd)
export GOTOOLCHAIN=local GOFLAGS=-modcacherw CGO_ENABLED=0
mkdir -p "$out"
(cd "$src" && go build -trimpath -ldflags "-s -w -X main.version=$version" -o "$out/pulumi-language-python" .)
sdk_dir=$(cd "$src" && go list -m -f '{{.Dir}}' "github.com/pulumi/pulumi/sdk/v3")
install -m 0755 "$sdk_dir/python/cmd/pulumi-language-python-exec" "$out/pulumi-language-python-exec"
install -m 0755 "$sdk_dir/python/dist/pulumi-resource-pulumi-python" "$out/pulumi-resource-pulumi-python"
