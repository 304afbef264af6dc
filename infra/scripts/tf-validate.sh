#!/usr/bin/env bash
# `terraform validate` for both environment roots. Needs the google provider, i.e. access
# to registry.terraform.io (or a provider mirror configured in the Terraform CLI config);
# it cannot run on the offline development machines, where tests/infra checks the schema.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../terraform" && pwd)"
terraform="${TERRAFORM:-terraform}"
command -v "${terraform}" >/dev/null || { echo "terraform CLI not found" >&2; exit 1; }
export CHECKPOINT_DISABLE=1

"${terraform}" fmt -check -recursive "${root}"
for env in dev prod; do
  echo "== ${env}"
  "${terraform}" -chdir="${root}/envs/${env}" init -backend=false -input=false -no-color >/dev/null
  "${terraform}" -chdir="${root}/envs/${env}" validate -no-color
done
