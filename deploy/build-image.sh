#!/usr/bin/env bash
# Build the signlang serving image with podman from a Debian bookworm base made by mmdebstrap
# (no registry needed). Needs: apt-get install podman runc mmdebstrap (run as root, or rootless podman).
#
#   deploy/build-image.sh [TAG]                       # TAG default localhost/signlang:onnx
#   INSTALL=full deploy/build-image.sh localhost/signlang:full
#   BASE_TAR=/path/base.tar deploy/build-image.sh    # reuse (or write and keep) a base tarball;
#                                                    # without it the script's own tarball is removed
#
# pip inside the build uses the same package index as outside: this machine's pip configuration
# (/etc/pip.conf, /etc/xdg/pip, PIP_* variables) and its local indexes are mounted read-only into
# the build when present.
set -euo pipefail
cd "$(dirname "$0")/.."

TAG="${1:-localhost/signlang:onnx}"
INSTALL="${INSTALL:-onnx}"
BASE_IMAGE="${BASE_IMAGE:-localhost/signlang-base:bookworm}"
export CONTAINERS_CONF="${CONTAINERS_CONF:-$PWD/deploy/containers.conf}"
PODMAN=(podman --runtime runc)

if ! "${PODMAN[@]}" image exists "$BASE_IMAGE"; then
  if [ -n "${BASE_TAR:-}" ] && [ -s "$BASE_TAR" ]; then
    "${PODMAN[@]}" import "$BASE_TAR" "$BASE_IMAGE"          # the caller's tarball: kept
  else
    # our own tarball (about 225 MB) lives in a temporary folder that is removed however we exit
    base_dir=$(mktemp -d); trap 'rm -rf "$base_dir"' EXIT
    tarball="${BASE_TAR:-$base_dir/bookworm-base.tar}"
    echo "building the Debian bookworm base with mmdebstrap -> $tarball" >&2
    mmdebstrap --variant=minbase --include=python3,python3-venv,ca-certificates bookworm "$tarball"
    "${PODMAN[@]}" import "$tarball" "$BASE_IMAGE"
    [ "$tarball" = "$base_dir/bookworm-base.tar" ] || echo "kept the base tarball $tarball (BASE_TAR)" >&2
  fi
fi

volumes=()
for path in /etc/pip.conf /etc/xdg/pip /opt/wheels /opt/pypi /opt/pypi-more; do
  [ -e "$path" ] && volumes+=(--volume "$path:$path:ro")
done
build_args=(--build-arg "BASE_IMAGE=$BASE_IMAGE" --build-arg "INSTALL=$INSTALL")
# The host's CA bundle for pip (an intercepting proxy's CA lives there, not in Debian's bundle).
ca="${PIP_CERT:-$(python3 -m pip config get global.cert 2>/dev/null || true)}"
if [ -n "$ca" ] && [ -f "$ca" ]; then
  volumes+=(--volume "$ca:/etc/ssl/build-host-ca.crt:ro")
  build_args+=(--build-arg "PIP_CERT=/etc/ssl/build-host-ca.crt")
fi
for var in PIP_INDEX_URL PIP_EXTRA_INDEX_URL PIP_FIND_LINKS PIP_DEFAULT_TIMEOUT PIP_CONSTRAINT; do
  [ -n "${!var:-}" ] && build_args+=(--build-arg "$var=${!var}")  # ARGs: used by RUN, not kept in the image
done

"${PODMAN[@]}" build --network=host "${volumes[@]}" "${build_args[@]}" -t "$TAG" -f Dockerfile .
echo "built $TAG; run it with:" >&2
echo "  CONTAINERS_CONF=$CONTAINERS_CONF podman --runtime runc run --rm --network=host -v RUN/onnx:/model:ro $TAG" >&2
