#!/usr/bin/env bash
# Build a local Kubernetes control plane from Go modules, for the tests that need a real API server:
# etcd, kube-apiserver, kube-controller-manager, kube-scheduler and kubectl (kwok, for fake nodes:
# build-kwok.sh). No release download site is reachable here.
# Usage: build-kubernetes-control-plane.sh KUBERNETES_VERSION ETCD_VERSION OUT_DIR
set -euo pipefail
k8s_version=$1 etcd_version=$2 out=$3
work=$(mktemp -d "${TMPDIR:-/tmp}/modelplane-control-plane.XXXXXX")
trap 'rm -rf "$work"' EXIT
export GOTOOLCHAIN=local GOFLAGS=-modcacherw CGO_ENABLED=0
mkdir -p "$out/bin"
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

log "done: $(ls "$out/bin" | tr '\n' ' ')"
