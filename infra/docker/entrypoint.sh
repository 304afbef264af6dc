#!/bin/sh
# Start the function named by FUNCTION_TARGET from functions/<target>/main.py.
# FUNCTION_TARGET and PORT are set by Cloud Run / Terraform (flag > env > default as in
# functions-framework itself); an unknown target fails fast with the allowed list.
# FUNCTION_TARGET=recluster is the Cloud Run Job that re-clusters persons (people.tf): a
# batch run, not a server; its arguments (collection ids) are passed on.
set -eu

target="${FUNCTION_TARGET:-}"
case "${target}" in
  ingest | indexer | query | cloudinary | clusterer) ;;
  recluster) exec python3 -m facesearch.people.jobs "$@" ;;
  *)
    echo "FUNCTION_TARGET must be one of ingest, indexer, query, cloudinary, clusterer, recluster (got '${target}')" >&2
    exit 64
    ;;
esac

exec functions-framework \
  --source="/app/functions/${target}/main.py" \
  --target="${target}" \
  --host=0.0.0.0 \
  --port="${PORT:-8080}" \
  "$@"
