#!/usr/bin/env bash
# Build what a real Kubernetes node needs, from Go modules (no release download site is reachable
# here): kubelet, kube-proxy and metrics-server from the control plane's module (toolchain/kubernetes,
# so the packages compiled for the control plane are reused), containerd v2 with its runc shim and ctr
# (the pod sandbox image: build-pause-image.sh). runc, the CNI plugins, conntrack and the registry come
# from Debian's packages (scripts/bootstrap-kubernetes).
# Usage: build-kubernetes-node.sh KUBERNETES_VERSION CONTAINERD_VERSION METRICS_SERVER_VERSION OUT_DIR
set -euo pipefail
k8s_version=$1 containerd_version=$2 metrics_server_version=$3 out=$4
work=$(mktemp -d "${TMPDIR:-/tmp}/modelplane-node.XXXXXX")
trap 'rm -rf "$work"' EXIT
export GOTOOLCHAIN=local GOFLAGS=-modcacherw CGO_ENABLED=0
mkdir -p "$out/bin"
log() { printf '[node +%4ss] %s\n' "$SECONDS" "$*"; }

# --- kubelet, kube-proxy and metrics-server (toolchain/kubernetes-commands.sh)
log "kubernetes $k8s_version: building kubelet and kube-proxy"
# shellcheck source=toolchain/kubernetes-commands.sh
. "$(dirname "$0")/kubernetes-commands.sh"
build_kubernetes_commands "$k8s_version" "$out/bin" k8s.io/kubernetes/cmd/kubelet k8s.io/kubernetes/cmd/kube-proxy
# metrics-server (the kubelets' resource metrics, served to the HPA through the API aggregator) is not
# stamped with Kubernetes' version: a build of its own, from the same compiled packages.
log "metrics-server $metrics_server_version: building"
require_pinned sigs.k8s.io/metrics-server "$metrics_server_version"
build_commands "$out/bin" "" sigs.k8s.io/metrics-server/cmd/metrics-server

# --- containerd v2: static, without the snapshotters that need C libraries.
log "containerd $containerd_version: building"
mkdir "$work/containerd" && cd "$work/containerd"
printf 'module modelplane.local/containerd\n\ngo 1.26\n' >go.mod
module=github.com/containerd/containerd/v2
for command in containerd containerd-shim-runc-v2 ctr; do go get "$module/cmd/$command@$containerd_version"; done
go build -trimpath -tags "no_btrfs no_devmapper no_zfs" -ldflags "-s -w" -o "$out/bin/containerd" "$module/cmd/containerd"
for command in containerd-shim-runc-v2 ctr; do
  go build -trimpath -ldflags "-s -w" -o "$out/bin/$command" "$module/cmd/$command"
done

log "done: $(ls "$out/bin" | tr '\n' ' ')"
