#!/usr/bin/env bash
# End-to-end test on a real cluster: run through `make e2e` (or directly) with a kubeconfig pointing at
# a kind cluster or any cluster you may install into. It cannot run without a cluster.
#
#   1. installs Katib v0.19.0 standalone unless the Experiment CRD is already there;
#   2. builds the suggestion and trainer images and loads them into kind (KIND_CLUSTER set, or the
#      current context is kind-*), or pushes them to REGISTRY (SKIP_BUILD=1: use what is there);
#   3. merges surrogate-gp/surrogate-rf into the live katib-config (scripts/merge-katib-config.py);
#   4. applies the CPU smoke variant (manifests/optional/smoke-cpu: 4 algorithms x sst2, tiny preset,
#      6 trials each) into namespace katib-surrogate-smoke and waits for every Experiment to finish;
#   5. runs `python -m client compare` on them and writes runs/e2e/.
#
# Environment:
#   REGISTRY, TAG        images to use (default ghcr.io/katib-surrogate, 0.1.0)
#   KIND_CLUSTER         kind cluster name to load images into (default: from a kind-* context)
#   SKIP_BUILD=1         do not build, load or push images
#   KATIB_VERSION        Katib release to install if absent (default v0.19.0)
#   TIMEOUT_SECONDS      how long to wait for the experiments (default 3600)
#   KEEP=1               keep the smoke namespace afterwards (default: delete it on success)
#   PYTHON               interpreter with the project installed (default .venv/bin/python)
#   OUTPUT_DIR           where `client compare` writes (default runs/e2e)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

REGISTRY="${REGISTRY:-ghcr.io/katib-surrogate}"
TAG="${TAG:-0.1.0}"
KATIB_VERSION="${KATIB_VERSION:-v0.19.0}"
TIMEOUT_SECONDS="${TIMEOUT_SECONDS:-3600}"
PYTHON="${PYTHON:-.venv/bin/python}"
OUTPUT_DIR="${OUTPUT_DIR:-runs/e2e}"
NAMESPACE=katib-surrogate-smoke
KATIB_URL="github.com/kubeflow/katib.git/manifests/v1beta1/installs/katib-standalone?ref=${KATIB_VERSION}"

log() { echo "[e2e $(date -u +%H:%M:%S)] $*" >&2; }
die() { log "FAILED: $*"; exit 1; }

need() { command -v "$1" >/dev/null 2>&1 || die "$1 is required ($2)"; }
need kubectl "https://kubernetes.io/docs/tasks/tools/"
[[ -x "$PYTHON" ]] || die "$PYTHON not found: run 'make venv' or set PYTHON"

context="$(kubectl config current-context 2>/dev/null)" || die "no current kubectl context (KUBECONFIG?)"
kubectl version --request-timeout=10s >/dev/null 2>&1 || die "cannot reach the API server of context '${context}'"
log "cluster context: ${context}"
KIND_CLUSTER="${KIND_CLUSTER:-}"
if [[ -z "$KIND_CLUSTER" && "$context" == kind-* ]]; then KIND_CLUSTER="${context#kind-}"; fi

# 1. Katib --------------------------------------------------------------------------------------------
if kubectl get crd experiments.kubeflow.org >/dev/null 2>&1; then
  log "Katib is installed (Experiment CRD present); not reinstalling"
else
  log "installing Katib ${KATIB_VERSION} standalone"
  kubectl apply -k "$KATIB_URL"
fi
log "waiting for the Katib deployments in namespace kubeflow"
kubectl -n kubeflow wait --for=condition=Available deployment --all --timeout=600s

# 2. Images -------------------------------------------------------------------------------------------
if [[ "${SKIP_BUILD:-0}" == 1 ]]; then
  log "SKIP_BUILD=1: using ${REGISTRY}/suggestion:${TAG} and ${REGISTRY}/trainer:${TAG} as they are"
elif [[ -n "$KIND_CLUSTER" ]]; then
  need kind "https://kind.sigs.k8s.io/"
  PUSH=0 REGISTRY="$REGISTRY" TAG="$TAG" bash scripts/build-images.sh
  for name in suggestion trainer; do
    log "loading ${REGISTRY}/${name}:${TAG} into kind cluster ${KIND_CLUSTER}"
    kind load docker-image "${REGISTRY}/${name}:${TAG}" --name "$KIND_CLUSTER"
  done
else
  PUSH=1 REGISTRY="$REGISTRY" TAG="$TAG" bash scripts/build-images.sh
fi

# 3. Manifests for these images, and katib-config -------------------------------------------------------
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
"$PYTHON" manifests/generate.py --registry "$REGISTRY" --tag "$TAG" --output-dir "$work" >/dev/null
log "merging surrogate-gp and surrogate-rf into the live katib-config"
kubectl -n kubeflow get configmap katib-config -o yaml \
  | "$PYTHON" scripts/merge-katib-config.py --entries "$work/10-katib-registration.yaml" \
  > "$work/katib-config.merged.yaml"
kubectl apply -f "$work/katib-config.merged.yaml"

# 4. Smoke experiments ------------------------------------------------------------------------------------
log "applying the CPU smoke variant into namespace ${NAMESPACE}"
kubectl apply -f "$work/optional/smoke-cpu/"
mapfile -t experiments < <(kubectl -n "$NAMESPACE" get experiments -l katib-surrogate/variant=smoke-cpu \
  -o jsonpath='{range .items[*]}{.metadata.name}{"\n"}{end}')
[[ ${#experiments[@]} -gt 0 ]] || die "no smoke experiments found in ${NAMESPACE}"

condition() {  # condition EXPERIMENT TYPE -> "True", "False" or ""
  kubectl -n "$NAMESPACE" get experiment "$1" \
    -o jsonpath="{.status.conditions[?(@.type==\"$2\")].status}" 2>/dev/null || true
}

diagnose() {
  log "diagnostics for experiment $1"
  kubectl -n "$NAMESPACE" describe experiment "$1" | tail -n 40 >&2 || true
  kubectl -n "$NAMESPACE" get trials -l "katib.kubeflow.org/experiment=$1" >&2 || true
  kubectl -n "$NAMESPACE" logs -l "katib.kubeflow.org/experiment=$1,katib.kubeflow.org/suggestion" \
    --tail=50 >&2 || true
  kubectl -n "$NAMESPACE" logs -l "katib.kubeflow.org/experiment=$1" -c training --tail=30 >&2 || true
}

deadline=$(( $(date +%s) + TIMEOUT_SECONDS ))
pending=("${experiments[@]}")
failed=()
while [[ ${#pending[@]} -gt 0 ]]; do
  still=()
  for exp in "${pending[@]}"; do
    if [[ "$(condition "$exp" Succeeded)" == True ]]; then
      log "experiment ${exp} succeeded"
    elif [[ "$(condition "$exp" Failed)" == True ]]; then
      log "experiment ${exp} FAILED"
      diagnose "$exp"
      failed+=("$exp")
    else
      still+=("$exp")
    fi
  done
  pending=("${still[@]+"${still[@]}"}")
  [[ ${#pending[@]} -eq 0 ]] && break
  if (( $(date +%s) > deadline )); then
    for exp in "${pending[@]}"; do diagnose "$exp"; done
    die "timed out after ${TIMEOUT_SECONDS}s waiting for: ${pending[*]}"
  fi
  kubectl -n "$NAMESPACE" get experiments -l katib-surrogate/variant=smoke-cpu --no-headers >&2 || true
  sleep 20
done
[[ ${#failed[@]} -eq 0 ]] || die "experiments failed: ${failed[*]}"

# 5. Compare ----------------------------------------------------------------------------------------------
log "comparing the algorithms (client compare) -> ${OUTPUT_DIR}"
mkdir -p "$OUTPUT_DIR"
"$PYTHON" -m client compare --namespace "$NAMESPACE" --output "$OUTPUT_DIR"

if [[ "${KEEP:-0}" == 1 ]]; then
  log "KEEP=1: leaving namespace ${NAMESPACE} in place"
else
  log "deleting namespace ${NAMESPACE}"
  kubectl delete namespace "$NAMESPACE" --wait=false
fi
log "passed: ${#experiments[@]} experiments succeeded; results in ${OUTPUT_DIR}"
