# Sourced by build-kubernetes-control-plane.sh and build-kubernetes-node.sh: commands built from the
# module in toolchain/kubernetes (Kubernetes, etcd and metrics-server at one set of versions, so a
# package two of them share compiles once).

kubernetes_module=$(cd "$(dirname "${BASH_SOURCE[0]}")/kubernetes" && pwd)

# Usage: require_pinned MODULE VERSION: fail unless toolchain/kubernetes/go.mod builds MODULE at VERSION.
require_pinned() {
  local pinned
  pinned=$(cd "$kubernetes_module" && go list -m -f '{{.Version}}' "$1")
  [ "$pinned" = "$2" ] && return
  echo "toolchain/kubernetes/go.mod pins $1 $pinned, not $2: run toolchain/kubernetes/update-module.sh" >&2
  return 1
}

# Usage: build_commands OUT_BIN LDFLAGS PACKAGE...: one build for all, so that one command's link
# overlaps the others' compiles on 2 cores.
build_commands() (
  local bin=$1 ldflags=$2
  shift 2
  cd "$kubernetes_module"
  printf '[kubernetes +%4ss] building %s\n' "$SECONDS" "$*"
  go build -trimpath -ldflags "-s -w $ldflags" -o "$bin/" "$@"
)

# Usage: build_kubernetes_commands VERSION OUT_BIN PACKAGE...: with Kubernetes' version stamped
# (unstamped servers report v0.0.0, which clients, pulumi-kubernetes among them, reject).
build_kubernetes_commands() {
  local k8s_version=$1 bin=$2
  shift 2
  require_pinned k8s.io/kubernetes "$k8s_version"
  local minor=${k8s_version#v1.} stamp="" package
  minor=${minor%%.*}
  for package in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    stamp="$stamp -X $package.gitVersion=$k8s_version -X $package.gitMajor=1 -X $package.gitMinor=$minor"
    stamp="$stamp -X $package.gitTreeState=clean -X $package.buildDate=1970-01-01T00:00:00Z"
  done
  build_commands "$bin" "$stamp" "$@"
}
