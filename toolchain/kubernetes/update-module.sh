#!/usr/bin/env bash
# Rewrite this folder's go.mod and go.sum: one module for every Kubernetes command the local cluster runs
# (control plane, kubelet, kube-proxy), etcd and metrics-server, so that the packages they share (k8s.io/api,
# client-go, apiserver, …) resolve to one version and compile once. Run it when a version changes, and
# commit the result; the build scripts only read it.
# Usage: toolchain/kubernetes/update-module.sh KUBERNETES_VERSION ETCD_VERSION METRICS_SERVER_VERSION
set -euo pipefail
k8s_version=$1 etcd_version=$2 metrics_server_version=$3
cd "$(dirname "$0")"
export GOTOOLCHAIN=local GOFLAGS=-modcacherw CGO_ENABLED=0
printf 'module modelplane.local/kubernetes\n\ngo 1.26\n' >go.mod
rm -f go.sum
# Kubernetes' go.mod replaces every k8s.io staging module by a relative path, which a dependent module
# ignores: replace each with its published release (v1.x.y -> v0.x.y). metrics-server's k8s.io modules
# follow, so it is built against the cluster's own release.
staging_version=v0.${k8s_version#v1.}
k8s_mod=$(go mod download -json "k8s.io/kubernetes@$k8s_version" | python3 -c 'import json,sys; print(json.load(sys.stdin)["GoMod"])')
sed -n 's#^\s*\(k8s.io/[a-z0-9-]*\) => \./staging/src/.*#\1#p' "$k8s_mod" | while read -r staged; do
  go mod edit -replace "$staged=$staged@$staging_version"
done
# etcd's server module replaces its sibling modules by relative path too.
for sibling in api/v3 client/pkg/v3 client/v3 pkg/v3; do
  go mod edit -replace "go.etcd.io/etcd/$sibling=go.etcd.io/etcd/$sibling@$etcd_version"
done
tools=()
for command in kube-apiserver kube-controller-manager kube-scheduler kubectl kubelet kube-proxy; do
  tools+=("k8s.io/kubernetes/cmd/$command@$k8s_version")
done
tools+=("go.etcd.io/etcd/server/v3@$etcd_version" "sigs.k8s.io/metrics-server/cmd/metrics-server@$metrics_server_version")
go get -tool "${tools[@]}"
# -e: some dependencies' tests import packages these releases no longer have; no build needs them.
go mod tidy -e
