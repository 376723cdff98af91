#!/usr/bin/env bash
# Build, and by default push, the two images the manifests use:
#   $REGISTRY/suggestion:$TAG  from suggestion_service/Dockerfile
#   $REGISTRY/trainer:$TAG     from trainer_image/Dockerfile
# Both builds use the repository root as context. Run through `make images REGISTRY=... TAG=...`.
#
# Environment:
#   REGISTRY        image prefix (default ghcr.io/katib-surrogate)
#   TAG             pinned tag, never "latest" (default 0.1.0)
#   PUSH            1 = push after building (default), 0 = build only (e.g. before `kind load`)
#   CONTAINER_TOOL  docker or podman (default: whichever is installed, docker first)
#   PLATFORM        optional --platform value, e.g. linux/amd64
#   IMAGES          which images (default "suggestion trainer")
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

REGISTRY="${REGISTRY:-ghcr.io/katib-surrogate}"
TAG="${TAG:-0.1.0}"
PUSH="${PUSH:-1}"
PLATFORM="${PLATFORM:-}"
IMAGES="${IMAGES:-suggestion trainer}"

die() { echo "build-images: $*" >&2; exit 2; }

[[ -n "$TAG" && "$TAG" != latest ]] || die "TAG must be a pinned tag such as 0.1.0, not '${TAG}'"
[[ "$PUSH" == 0 || "$PUSH" == 1 ]] || die "PUSH must be 0 or 1, not '${PUSH}'"

tool="${CONTAINER_TOOL:-}"
if [[ -z "$tool" ]]; then
  if command -v docker >/dev/null 2>&1; then tool=docker
  elif command -v podman >/dev/null 2>&1; then tool=podman
  else die "neither docker nor podman is installed (set CONTAINER_TOOL)"
  fi
fi
command -v "$tool" >/dev/null 2>&1 || die "CONTAINER_TOOL '${tool}' is not installed"

dockerfile_for() {
  case "$1" in
    suggestion) echo suggestion_service/Dockerfile ;;
    trainer) echo trainer_image/Dockerfile ;;
    *) die "unknown image '$1' (known: suggestion trainer)" ;;
  esac
}

for name in $IMAGES; do
  dockerfile="$(dockerfile_for "$name")"
  [[ -f "$dockerfile" ]] || die "$dockerfile is missing"
  image="${REGISTRY}/${name}:${TAG}"
  args=(build -f "$dockerfile" -t "$image")
  [[ -n "$PLATFORM" ]] && args+=(--platform "$PLATFORM")
  echo "build-images: $tool ${args[*]} ."
  "$tool" "${args[@]}" .
  if [[ "$PUSH" == 1 ]]; then
    echo "build-images: pushing $image"
    "$tool" push "$image"
  fi
done
