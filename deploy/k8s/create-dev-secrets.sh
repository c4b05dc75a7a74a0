#!/usr/bin/env bash
# Creates the secrets the dev overlay references, with fresh random values (nothing is committed):
#   bash deploy/k8s/create-dev-secrets.sh [NAMESPACE]     (default redress-dev; needs kubectl and openssl)
# The channel keys are printed once so you can configure a test integration; the console gets an empty
# operator list, which in development means the built-in sign-ins (agent, lead, manager / redress-dev).
set -euo pipefail
ns="${1:-redress-dev}"
random() { openssl rand -hex "${1:-24}"; }

kubectl get namespace "$ns" >/dev/null 2>&1 || kubectl create namespace "$ns"
apply() { kubectl -n "$ns" create secret generic "$@" --dry-run=client -o yaml | kubectl apply -f -; }

apply redress-operator-token --from-literal=secret="$(random 32)"
keys="{"
for channel in web app email phone chat social store generic; do
    keys+="\"$channel\": [{\"key_id\": \"$channel-dev\", \"secret\": \"$(random)\"}],"
done
keys="${keys%,}}"
apply intake-channel-keys --from-literal=channel-keys.json="$keys"
apply console-operators --from-literal=operators.json="[]"
echo "channel keys for $ns (keep them; they are not shown again):"
echo "$keys"
