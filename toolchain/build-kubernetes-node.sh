#!/usr/bin/env bash
# Build what a real Kubernetes node needs, from Go modules (no release download site is reachable
# here): kubelet and kube-proxy from the same Kubernetes release as the control plane, containerd v2
# with its runc shim and ctr, and the pod sandbox ("pause") as a local image archive. runc, the CNI
# plugins, conntrack and the registry come from Debian's packages (scripts/bootstrap-kubernetes).
# The Go build cache is the control plane's, so Kubernetes packages built there are reused.
# metrics-server (the resource metrics API the HPA reads) is built from its own module.
# Usage: build-kubernetes-node.sh KUBERNETES_VERSION CONTAINERD_VERSION METRICS_SERVER_VERSION OUT_DIR
set -euo pipefail
k8s_version=$1 containerd_version=$2 metrics_server_version=$3 out=$4
work=$(mktemp -d "${TMPDIR:-/tmp}/modelplane-node.XXXXXX")
trap 'rm -rf "$work"' EXIT
export GOTOOLCHAIN=local GOFLAGS=-modcacherw CGO_ENABLED=0
mkdir -p "$out/bin"
log() { printf '[node +%4ss] %s\n' "$SECONDS" "$*"; }

# --- kubelet and kube-proxy, as the control plane's commands (toolchain/kubernetes-commands.sh)
log "kubernetes $k8s_version: building kubelet and kube-proxy"
# shellcheck source=toolchain/kubernetes-commands.sh
. "$(dirname "$0")/kubernetes-commands.sh"
build_kubernetes_commands "$k8s_version" "$work/kubernetes" "$out/bin" kubelet kube-proxy

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

# --- metrics-server: the kubelets' resource metrics, served to the HPA through the API aggregator.
log "metrics-server $metrics_server_version: building"
mkdir "$work/metrics-server" && cd "$work/metrics-server"
printf 'module modelplane.local/metrics-server\n\ngo 1.26\n' >go.mod
go get "sigs.k8s.io/metrics-server/cmd/metrics-server@$metrics_server_version"
go build -trimpath -ldflags "-s -w" -o "$out/bin/metrics-server" sigs.k8s.io/metrics-server/cmd/metrics-server

# --- the pod sandbox: a process that holds the pod's namespaces and reaps orphans, as an image archive.
log "pause: building"
mkdir "$work/pause" && cd "$work/pause"
printf 'module modelplane.local/pause\n\ngo 1.26\n' >go.mod
cat >main.go <<'GO'
// pause holds a pod's namespaces, reaps orphaned children and exits on SIGINT or SIGTERM.
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	signals := make(chan os.Signal, 1)
	signal.Notify(signals, syscall.SIGINT, syscall.SIGTERM, syscall.SIGCHLD)
	for sig := range signals {
		if sig != syscall.SIGCHLD {
			os.Exit(0)
		}
		for {
			var status syscall.WaitStatus
			if pid, err := syscall.Wait4(-1, &status, syscall.WNOHANG, nil); pid <= 0 || err != nil {
				break
			}
		}
	}
}
GO
go build -trimpath -ldflags "-s -w" -o pause .
printf 'FROM scratch\nCOPY pause /pause\nENTRYPOINT ["/pause"]\n' >Dockerfile
docker build -q -t modelplane/pause:1 . >/dev/null
docker save -o "$out/pause.tar" modelplane/pause:1
log "done: $(ls "$out/bin" | tr '\n' ' ')"
