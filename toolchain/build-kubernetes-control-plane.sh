#!/usr/bin/env bash
# Build a local Kubernetes control plane from Go modules, for the tests that need a real API server:
# etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kubectl and kwok (fake nodes),
# plus kwok's stage files. No release download site is reachable here.
# Usage: build-kubernetes-control-plane.sh KUBERNETES_VERSION ETCD_VERSION KWOK_VERSION OUT_DIR
set -euo pipefail
k8s_version=$1 etcd_version=$2 kwok_version=$3 out=$4
work=$(mktemp -d "${TMPDIR:-/tmp}/modelplane-control-plane.XXXXXX")
trap 'rm -rf "$work"' EXIT
export GOTOOLCHAIN=local GOFLAGS=-modcacherw CGO_ENABLED=0
mkdir -p "$out/bin" "$out/stages"
log() { printf '[control-plane +%4ss] %s\n' "$SECONDS" "$*"; }

# --- Kubernetes (toolchain/kubernetes-commands.sh)
log "kubernetes $k8s_version: building"
# shellcheck source=toolchain/kubernetes-commands.sh
. "$(dirname "$0")/kubernetes-commands.sh"
build_kubernetes_commands "$k8s_version" "$work/kubernetes" "$out/bin" kube-apiserver kube-controller-manager kube-scheduler kubectl

# --- etcd: the server module replaces its sibling modules by relative path; use their releases.
log "etcd $etcd_version: building"
mkdir "$work/etcd" && cd "$work/etcd"
printf 'module modelplane.local/etcd\n\ngo 1.26\n' >go.mod
for sibling in api/v3 client/pkg/v3 client/v3 pkg/v3; do
  go mod edit -replace "go.etcd.io/etcd/$sibling=go.etcd.io/etcd/$sibling@$etcd_version"
done
go get "go.etcd.io/etcd/server/v3@$etcd_version"
go build -trimpath -ldflags "-s -w" -o "$out/bin/etcd" go.etcd.io/etcd/server/v3

# --- kwok: no replaces, so `go install` works; its stage files ship in the module.
log "kwok $kwok_version: building"
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
log "done: $(ls "$out/bin" | tr '\n' ' ')"
