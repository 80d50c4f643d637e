#!/usr/bin/env bash
# The ECK-reference scenario on a real cluster (.github/workflows/e2e-elasticsearch.yml, job
# "eck"): ECK from its Helm chart, an Elasticsearch it manages, the operator from this
# repository's chart (no default cluster), and InferenceEndpoints that name that Elasticsearch in
# spec.elasticsearchRef, once with an API key from a Secret and once with useElasticUser. Their
# provider is the OpenAI-compatible mock (cargo run --example mock-provider), which the
# Elasticsearch Pod reaches at PROVIDER_URL, so that Elasticsearch's calls to the provider on
# create and on _update succeed.
#
# Needs: a cluster in KUBECONFIG (kind), the operator image IMAGE (repository:tag) loaded into
# its nodes, PROVIDER_URL, and helm and kubectl (HELM, KUBECTL; default .ci/bin/).
# Usage: IMAGE=es-inference-operator:e2e PROVIDER_URL=http://172.18.0.1:8089 bash .ci/e2e-eck.sh
set -euo pipefail
cd "$(dirname "$0")/.."

HELM=${HELM:-.ci/bin/helm}
KUBECTL=${KUBECTL:-.ci/bin/kubectl}
IMAGE=${IMAGE:?the operator image, repository:tag, loaded into the nodes}
PROVIDER_URL=${PROVIDER_URL:?the mock provider, as the Elasticsearch Pod reaches it}
ECK_VERSION=${ECK_VERSION:-3.3.0}
ES_VERSION=${ES_VERSION:-9.5.2}
ES_IMAGE=${ES_IMAGE:-docker.elastic.co/elasticsearch/elasticsearch:9.5.2@sha256:9c1e1afc2bda921b35025e21c72ec6e392266995aa35ad6a47887363592718be}
NS=search
ES=quickstart

k() { "$KUBECTL" "$@"; }
step() { echo "== $*"; }

# Runs curl inside the Elasticsearch Pod against its own HTTP endpoint, as the elastic user
# (-k: the certificate names the Service, not localhost; this is the test talking to itself).
es_curl() { # method path [json body]
  local password args
  password=$(k -n "$NS" get secret "$ES-es-elastic-user" -o go-template='{{.data.elastic | base64decode}}')
  args=(-sS -k --fail-with-body -u "elastic:$password" -X "$1" "https://localhost:9200$2"
    -H 'Content-Type: application/json')
  if [[ $# -ge 3 ]]; then args+=(-d "$3"); fi
  k -n "$NS" exec "$ES-es-default-0" -c elasticsearch -- curl "${args[@]}"
}

dump() {
  echo "== diagnostics"
  k get elasticsearch,inferenceendpoints -A -o wide || true
  k -n "$NS" describe inferenceendpoints || true
  k -n es-inference-system logs deploy/es-inference-operator --tail=200 || true
}
trap dump ERR

step "ECK $ECK_VERSION from its Helm chart"
"$HELM" upgrade --install elastic-operator eck-operator --repo https://helm.elastic.co \
  --version "$ECK_VERSION" --namespace elastic-system --create-namespace --wait --timeout 5m

step "an Elasticsearch $ES_VERSION managed by ECK"
k create namespace "$NS" --dry-run=client -o yaml | k apply -f -
k apply -f - <<EOF
apiVersion: elasticsearch.k8s.elastic.co/v1
kind: Elasticsearch
metadata:
  name: $ES
  namespace: $NS
spec:
  version: $ES_VERSION
  image: $ES_IMAGE
  nodeSets:
    - name: default
      count: 1
      config:
        node.store.allow_mmap: false
      podTemplate:
        spec:
          containers:
            - name: elasticsearch
              env:
                - name: ES_JAVA_OPTS
                  value: -Xms1g -Xmx1g
              resources:
                requests: { cpu: 500m, memory: 2Gi }
                limits: { memory: 2Gi }
EOF
k -n "$NS" wait "elasticsearch/$ES" --for=jsonpath='{.status.health}'=green --timeout=15m

step "the operator from charts/es-inference-operator, without a default cluster"
"$HELM" upgrade --install es-inference-operator charts/es-inference-operator \
  --namespace es-inference-system --create-namespace --wait --timeout 5m \
  --set image.repository="${IMAGE%:*}" --set image.tag="${IMAGE##*:}" --set image.pullPolicy=Never

step "an API key for the operator, made by Elasticsearch, in a Secret of the namespace"
key=$(es_curl POST /_security/api_key \
  '{"name":"es-inference-operator-eck-e2e","role_descriptors":{"inference":{"cluster":["manage_inference","monitor_inference","cluster:monitor/main"]}}}' |
  python3 -c 'import json,sys; print(json.load(sys.stdin)["encoded"])')
echo "::add-mask::$key"
k -n "$NS" create secret generic "$ES-inference-key" --from-literal=api-key="$key" \
  --dry-run=client -o yaml | k apply -f -
k -n "$NS" create secret generic provider --from-literal=api-key=sk-eck-e2e-FIRST \
  --dry-run=client -o yaml | k apply -f -

endpoint() { # name inference-id reference(JSON)
  k apply -f - <<EOF
apiVersion: es-inference.dev/v1alpha1
kind: InferenceEndpoint
metadata:
  name: $1
  namespace: $NS
spec:
  inferenceId: $2
  taskType: completion
  service: openai
  serviceSettings:
    model_id: e2e-chat
    url: $PROVIDER_URL/v1/chat/completions
  secretSettings:
    api_key:
      secretKeyRef: { name: provider, key: api-key }
  elasticsearchRef: $3
EOF
}

step "InferenceEndpoints on the ECK cluster: with the API key, and with the elastic user"
endpoint via-key eck-e2e-via-key "{kind: Elasticsearch, name: $ES, apiKeySecretRef: {name: $ES-inference-key, key: api-key}}"
endpoint via-elastic eck-e2e-via-elastic "{kind: Elasticsearch, name: $ES, useElasticUser: true}"
for name in via-key via-elastic; do
  k -n "$NS" wait "inferenceendpoint/$name" --for=condition=Ready --timeout=5m
done
for id in eck-e2e-via-key eck-e2e-via-elastic; do
  es_curl GET "/_inference/$id" | python3 -c '
import json, sys
ep = json.load(sys.stdin)["endpoints"][0]
assert ep["service"] == "openai", ep
print("in Elasticsearch:", ep["inference_id"], ep["service"], ep["task_type"])'
done

step "a rotated provider key reaches Elasticsearch (_update, which calls the provider)"
before=$(k -n "$NS" get inferenceendpoint/via-key -o jsonpath='{.status.secretVersions}')
k -n "$NS" create secret generic provider --from-literal=api-key=sk-eck-e2e-ROTATED \
  --dry-run=client -o yaml | k apply -f -
version=$(k -n "$NS" get secret provider -o jsonpath='{.metadata.resourceVersion}')
k -n "$NS" wait inferenceendpoint/via-key --timeout=3m \
  --for=jsonpath='{.status.secretVersions}'="provider@$version"
k -n "$NS" wait inferenceendpoint/via-key --for=condition=Ready --timeout=1m
echo "secretVersions: $before -> provider@$version"

step "deleting the resources deletes the endpoints in Elasticsearch"
k -n "$NS" delete inferenceendpoint via-key via-elastic --wait --timeout=3m
for id in eck-e2e-via-key eck-e2e-via-elastic; do
  if es_curl GET "/_inference/$id" >/dev/null 2>&1; then
    echo "::error::$id is still in Elasticsearch after its resource was deleted"
    exit 1
  fi
done
echo "ECK reference scenario passed"
