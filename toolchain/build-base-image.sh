#!/usr/bin/env bash
# Make the local base image: a minimal Debian with python3, venv and pip, plus the host's CA
# bundle (containers reach the package registries only through it). No registry is reachable
# here, so the image is debootstrapped and `docker import`ed instead of pulled.
# Usage: build-base-image.sh TAG WORK_DIR
set -euo pipefail
tag=$1 work=$2
suite=${MODELPLANE_BASE_SUITE:-bookworm}
mirror=${MODELPLANE_DEBIAN_MIRROR:-http://deb.debian.org/debian}
rootfs="$work/rootfs"
rm -rf "$rootfs"
mkdir -p "$rootfs"
debootstrap --variant=minbase \
  --include=python3,python3-venv,python3-pip,ca-certificates,libgomp1 \
  "$suite" "$rootfs" "$mirror"
if [ -f /etc/ssl/certs/ca-certificates.crt ]; then
  cp /etc/ssl/certs/ca-certificates.crt "$rootfs/etc/ssl/certs/ca-certificates.crt"
fi
# Keep the image small: package lists and caches are not needed at run time.
rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/*.bin "$rootfs"/var/cache/apt/archives/*.deb
tar -C "$rootfs" -c . | docker import \
  --change 'ENV PIP_CERT=/etc/ssl/certs/ca-certificates.crt' \
  --change 'ENV REQUESTS_CA_BUNDLE=/etc/ssl/certs/ca-certificates.crt' \
  --change 'ENV LANG=C.UTF-8' \
  --change 'CMD ["python3"]' \
  - "$tag"
rm -rf "$rootfs"
