#!/usr/bin/env bash
# Build the pulumi-kubernetes provider plugin from its Go module (no download site is reachable).
# Usage: build-kubernetes-provider.sh VERSION MODULE_VERSION OUT_DIR
#   VERSION         the release the binary reports (and the Python SDK pinned in pyproject.toml asks for)
#   MODULE_VERSION  the provider module's pseudo-version for that release (the proxy has no provider/ tags)
set -euo pipefail
version=$1 module_version=$2 out=$3
module=github.com/pulumi/pulumi-kubernetes/provider/v4
work=$(mktemp -d "${TMPDIR:-/tmp}/modelplane-k8s-provider.XXXXXX")
trap 'rm -rf "$work"' EXIT
cd "$work"
export GOTOOLCHAIN=local GOFLAGS=-modcacherw CGO_ENABLED=0
cat > go.mod <<MOD
module modelplane.local/pulumi-resource-kubernetes

go 1.25
MOD
# The provider's go.mod replaces sdk/v4 by a relative path, which a dependent module ignores:
# require the published sdk/v4 its go.mod names instead.
go get "$module@$module_version"
src=$(go list -m -f '{{.Dir}}' "$module")
sdk_version=$(sed -n 's#^\s*github.com/pulumi/pulumi-kubernetes/sdk/v4 \(v[^ ]*\)$#\1#p' "$src/go.mod" | head -n1)
go get "github.com/pulumi/pulumi-kubernetes/sdk/v4@$sdk_version"
# The main package embeds schema files generated from the committed ones (its generate.go).
cp "$src"/cmd/pulumi-resource-kubernetes/{main.go,generate.go,schema.json,terraform-mapping.json} .
chmod u+w ./*
go mod tidy
VERSION=$version go run generate.go
mkdir -p "$out"
go build -trimpath -ldflags "-s -w -X $module/pkg/version.Version=$version" \
  -o "$out/pulumi-resource-kubernetes" .
