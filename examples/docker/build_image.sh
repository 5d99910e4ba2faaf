#!/usr/bin/env bash
# Build the image the docker examples and tests run in: Debian bookworm (minbase) with python3.
#
#   examples/docker/build_image.sh [IMAGE]        (default local/mlpipe-bookworm-python:1)
#
# Idempotent and cheap when the image exists (one `docker image inspect`). Needs no registry:
# the root filesystem comes from Debian's package mirror through debootstrap (root, ~1 min) and
# is imported with `docker import`. Without debootstrap it falls back to `docker build` from
# debian:bookworm-slim, which needs a registry. Concurrent callers wait on one lock.
set -euo pipefail

IMAGE="${1:-${MLPIPE_DOCKER_IMAGE:-local/mlpipe-bookworm-python:1}}"
MIRROR="${MLPIPE_DEBIAN_MIRROR:-http://deb.debian.org/debian}"

if docker image inspect "$IMAGE" >/dev/null 2>&1; then
  exit 0
fi

exec 9>"${TMPDIR:-/tmp}/mlpipe-docker-image.lock"
flock 9
if docker image inspect "$IMAGE" >/dev/null 2>&1; then  # built while we waited
  exit 0
fi

started=$(date +%s)
if command -v debootstrap >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
  rootfs="$(mktemp -d "${TMPDIR:-/tmp}/mlpipe-rootfs.XXXXXX")"
  trap 'rm -rf "$rootfs"' EXIT
  echo "building $IMAGE: debootstrap bookworm (minbase + python3) from $MIRROR" >&2
  if ! debootstrap --variant=minbase --include=python3 bookworm "$rootfs" "$MIRROR" \
      >"$rootfs.log" 2>&1; then
    tail -n 30 "$rootfs.log" >&2
    rm -f "$rootfs.log"
    exit 1
  fi
  rm -f "$rootfs.log"
  rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/* \
    "$rootfs"/usr/share/doc "$rootfs"/usr/share/man "$rootfs"/usr/share/locale
  tar -C "$rootfs" -c . | docker import \
    -c 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    -c 'ENV LANG=C.UTF-8' \
    -m "mlpipe: debootstrap --variant=minbase --include=python3 bookworm" \
    - "$IMAGE" >/dev/null
else
  echo "building $IMAGE: docker build FROM debian:bookworm-slim (needs a registry)" >&2
  docker build -q -t "$IMAGE" - >/dev/null <<'DOCKERFILE'
FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends python3 \
    && rm -rf /var/lib/apt/lists/*
DOCKERFILE
fi
echo "built $IMAGE in $(( $(date +%s) - started )) s" >&2
