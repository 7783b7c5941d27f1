# Sourced by build-kubernetes-control-plane.sh and build-kubernetes-node.sh: Kubernetes commands
# built from the k8s.io/kubernetes module, with versions stamped.
# Usage: build_kubernetes_commands VERSION WORK_DIR OUT_BIN COMMAND...

build_kubernetes_commands() {
  local k8s_version=$1 dir=$2 bin=$3
  shift 3
  # Kubernetes' go.mod replaces every k8s.io staging module by a relative path, which a dependent
  # module ignores; replace each with the published staging release (v1.x.y -> v0.x.y).
  local staging_version=v0.${k8s_version#v1.}
  mkdir -p "$dir" && cd "$dir"
  printf 'module modelplane.local/kubernetes\n\ngo 1.26\n' >go.mod
  go mod download -json "k8s.io/kubernetes@$k8s_version" >k8s.json
  local k8s_mod
  k8s_mod=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["GoMod"])' k8s.json)
  sed -n 's#^\s*\(k8s.io/[a-z0-9-]*\) => \./staging/src/.*#\1#p' "$k8s_mod" | while read -r staged; do
    go mod edit -replace "$staged=$staged@$staging_version"
  done
  go get "k8s.io/kubernetes@$k8s_version"
  local command
  for command in "$@"; do go get "k8s.io/kubernetes/cmd/$command@$k8s_version"; done
  # Unstamped servers report v0.0.0, which clients (pulumi-kubernetes among them) reject.
  local minor=${k8s_version#v1.} stamp="" package
  minor=${minor%%.*}
  for package in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    stamp="$stamp -X $package.gitVersion=$k8s_version -X $package.gitMajor=1 -X $package.gitMinor=$minor"
    stamp="$stamp -X $package.gitTreeState=clean -X $package.buildDate=1970-01-01T00:00:00Z"
  done
  # One build for all: one command's links overlap the others' compiles on 2 cores.
  printf '[kubernetes +%4ss] building %s\n' "$SECONDS" "$*"
  local packages=()
  for command in "$@"; do packages+=("k8s.io/kubernetes/cmd/$command"); done
  go build -trimpath -ldflags "-s -w $stamp" -o "$bin/" "${packages[@]}"
}
