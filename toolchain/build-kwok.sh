#!/usr/bin/env bash
# Build kwok (fake nodes for scale tests of many endpoints) and its stage files from its Go module:
# only for `scripts/bootstrap-kubernetes --with-kwok`; the suite runs on the real node.
# Usage: build-kwok.sh KWOK_VERSION OUT_DIR
set -euo pipefail
kwok_version=$1 out=$2
export GOTOOLCHAIN=local GOFLAGS=-modcacherw CGO_ENABLED=0
mkdir -p "$out/bin" "$out/stages"

# No replaces, so `go install` works; its stage files ship in the module.
GOBIN="$out/bin" go install -trimpath -ldflags "-s -w -X sigs.k8s.io/kwok/pkg/consts.Version=$kwok_version" \
  "sigs.k8s.io/kwok/cmd/kwok@$kwok_version"
kwok_dir=$(go mod download -json "sigs.k8s.io/kwok@$kwok_version" | python3 -c 'import json,sys; print(json.load(sys.stdin)["Dir"])')
# Nodes become Ready and keep heartbeating (else the node controller evicts); pods become Ready.
for stage in node/fast node/heartbeat pod/fast; do
  for file in "$kwok_dir/kustomize/stage/$stage"/*.yaml; do
    [ "$(basename "$file")" = kustomization.yaml ] && continue
    cp "$file" "$out/stages/"
  done
done
chmod -R u+w "$out/stages"
