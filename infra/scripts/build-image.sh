#!/usr/bin/env bash
# Build (and optionally push) the function image.
#
#   infra/scripts/build-image.sh                      # local docker build -> facesearch:dev
#   IMAGE=REGION-docker.pkg.dev/P/REPO/facesearch TAG=v1 infra/scripts/build-image.sh --push
#   IMAGE=... TAG=... infra/scripts/build-image.sh --cloud   # gcloud builds submit
#
# Generated models must exist first (`make models`): the image build copies models/ and
# fails unless every file matches models/manifest.json. Prints the pushed digest reference
# to use as the Terraform `image` variable.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
image="${IMAGE:-facesearch}"
tag="${TAG:-$(git -C "${root}" rev-parse --short=12 HEAD 2>/dev/null || echo dev)}"
mode="local"
push="false"
for arg in "$@"; do
  case "${arg}" in
    --push) push="true" ;;
    --cloud) mode="cloud" ;;
    *) echo "usage: $0 [--push] [--cloud]" >&2; exit 64 ;;
  esac
done

python="${FACESEARCH_PYTHON:-${root}/.venv/bin/python}"  # an interpreter with the project installed
"${python}" "${root}/infra/docker/verify_image.py" --models-dir "${root}/models" --app-dir "${root}" \
  || { echo "fix the models (make models) / entry points (functions/<target>/main.py) above before building" >&2; exit 1; }

if [[ "${mode}" == "cloud" ]]; then
  command -v gcloud >/dev/null || { echo "gcloud CLI not found" >&2; exit 1; }
  gcloud builds submit "${root}" \
    --config="${root}/infra/docker/cloudbuild.yaml" \
    --ignore-file="${root}/infra/docker/gcloudignore" \
    --substitutions="_IMAGE=${image},_TAG=${tag}"
  gcloud artifacts docker images describe "${image}:${tag}" --format='value(image_summary.fully_qualified_digest)'
  exit 0
fi

command -v docker >/dev/null || { echo "docker CLI not found" >&2; exit 1; }
docker info >/dev/null 2>&1 || { echo "no reachable docker engine (use --cloud for Cloud Build)" >&2; exit 1; }
DOCKER_BUILDKIT=1 docker build \
  --file "${root}/infra/docker/Dockerfile" \
  --label "org.opencontainers.image.revision=${tag}" \
  --tag "${image}:${tag}" \
  "${root}"
if [[ "${push}" == "true" ]]; then
  docker push "${image}:${tag}"
  docker inspect --format='{{index .RepoDigests 0}}' "${image}:${tag}"
else
  echo "${image}:${tag}"
fi
