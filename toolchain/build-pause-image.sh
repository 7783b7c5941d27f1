#!/usr/bin/env bash
# Build the pod sandbox image ("pause", toolchain/pause: a process that holds a pod's namespaces and
# reaps orphans) as an image archive the node's containerd imports. Needs Docker, unlike the node's
# other parts, so scripts/bootstrap-kubernetes runs it once scripts/bootstrap has an engine answering.
# Usage: build-pause-image.sh OUT_ARCHIVE
set -euo pipefail
archive=$1
work=$(mktemp -d "${TMPDIR:-/tmp}/modelplane-pause.XXXXXX")
trap 'rm -rf "$work"' EXIT
export GOTOOLCHAIN=local CGO_ENABLED=0
(cd "$(dirname "$0")/pause" && go build -trimpath -ldflags "-s -w" -o "$work/pause" .)
printf 'FROM scratch\nCOPY pause /pause\nENTRYPOINT ["/pause"]\n' >"$work/Dockerfile"
docker build -q -t modelplane/pause:1 "$work" >/dev/null
mkdir -p "$(dirname "$archive")"
docker save -o "$archive" modelplane/pause:1
