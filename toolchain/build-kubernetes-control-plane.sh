#!/usr/bin/env bash
# Build a local Kubernetes control plane from Go modules, for the tests that need a real API server:
# etcd, kube-apiserver, kube-controller-manager, kube-scheduler and kubectl (kwok, for fake nodes:
# build-kwok.sh). No release download site is reachable here.
# Usage: build-kubernetes-control-plane.sh KUBERNETES_VERSION ETCD_VERSION OUT_DIR
set -euo pipefail
k8s_version=$1 etcd_version=$2 out=$3
export GOTOOLCHAIN=local GOFLAGS=-modcacherw CGO_ENABLED=0
mkdir -p "$out/bin"
log() { printf '[control-plane +%4ss] %s\n' "$SECONDS" "$*"; }

log "kubernetes $k8s_version and etcd $etcd_version: building"
# shellcheck source=toolchain/kubernetes-commands.sh
. "$(dirname "$0")/kubernetes-commands.sh"
require_pinned go.etcd.io/etcd/server/v3 "$etcd_version"
commands=()
for command in kube-apiserver kube-controller-manager kube-scheduler kubectl; do commands+=("k8s.io/kubernetes/cmd/$command"); done
build_kubernetes_commands "$k8s_version" "$out/bin" "${commands[@]}" go.etcd.io/etcd/server/v3
mv "$out/bin/server" "$out/bin/etcd" # etcd's main package is server/v3
log "done: $(ls "$out/bin" | tr '\n' ' ')"
