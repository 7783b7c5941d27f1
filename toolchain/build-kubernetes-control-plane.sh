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

# --- Kubernetes: its go.mod replaces every k8s.io staging module by a relative path, which a
# dependent module ignores; replace each with the published staging release (v1.x.y -> v0.x.y).
log "kubernetes $k8s_version: resolving modules"
staging_version=v0.${k8s_version#v1.}
mkdir "$work/kubernetes" && cd "$work/kubernetes"
printf 'module modelplane.local/kubernetes-control-plane\n\ngo 1.26\n' >go.mod
go mod download -json "k8s.io/kubernetes@$k8s_version" >"$work/k8s.json"
k8s_mod=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["GoMod"])' "$work/k8s.json")
sed -n 's#^\s*\(k8s.io/[a-z0-9-]*\) => \./staging/src/.*#\1#p' "$k8s_mod" | while read -r staged; do
  go mod edit -replace "$staged=$staged@$staging_version"
done
go get "k8s.io/kubernetes@$k8s_version"
commands="kube-apiserver kube-controller-manager kube-scheduler kubectl"
for command in $commands; do go get "k8s.io/kubernetes/cmd/$command@$k8s_version"; done
# Unstamped servers report v0.0.0, which clients (pulumi-kubernetes among them) reject.
minor=${k8s_version#v1.}; minor=${minor%%.*}
stamp=""
for package in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  stamp="$stamp -X $package.gitVersion=$k8s_version -X $package.gitMajor=1 -X $package.gitMinor=$minor"
  stamp="$stamp -X $package.gitTreeState=clean -X $package.buildDate=1970-01-01T00:00:00Z"
done
for command in $commands; do
  log "kubernetes: building $command"
  go build -trimpath -ldflags "-s -w $stamp" -o "$out/bin/$command" "k8s.io/kubernetes/cmd/$command"
done

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
