#!/usr/bin/env bash
# The Elasticsearch contracts of the stand-in (tests/es_contract.rs) and the end-to-end suite
# (tests/e2e) against a real Elasticsearch in a container, security on (TLS with the CA it
# generates, the elastic password set here) and a trial licence, through an API key created with
# the REST API. The operator's endpoints use the OpenAI-compatible mock provider
# (cargo run --example mock-provider, E2E_PROVIDER_URL) through the openai service's url setting,
# so that Elasticsearch's calls to the provider on create and on every _update succeed. The Pod
# stage installs the chart with the operator image IMAGE, against the stand-in served where the
# kind nodes reach it. Run by .github/workflows/e2e-elasticsearch.yml; locally, see the README
# ("End-to-end tests against a real Elasticsearch").
#
# Needs: docker; a kind cluster (KUBECONFIG, or ~/.kube/config) whose nodes have IMAGE loaded;
# cargo; helm (HELM, default .ci/bin/helm). Elasticsearch runs with --network host, so that it
# reaches the mock provider on 127.0.0.1 and the suite reaches it on localhost:9200.
# Usage: ES_IMAGE=docker.elastic.co/elasticsearch/elasticsearch:9.5.2 IMAGE=es-inference-operator:e2e \
#          bash .ci/e2e-elasticsearch.sh [scenario name filter]
set -euo pipefail
cd "$(dirname "$0")/.."

ES_IMAGE=${ES_IMAGE:?the Elasticsearch image, e.g. docker.elastic.co/elasticsearch/elasticsearch:9.5.2}
IMAGE=${IMAGE:-es-inference-operator:e2e}
HELM=${HELM:-$PWD/.ci/bin/helm}
KIND_NETWORK=${KIND_NETWORK:-kind}
CONTAINER=${ES_CONTAINER:-es-inference-e2e}
PROVIDER_PORT=${PROVIDER_PORT:-8089}
STANDIN_PORT=${STANDIN_PORT:-9201}
TARGET=${CARGO_TARGET_DIR:-target}

work=$(mktemp -d)
pids=()
cleanup() {
  status=$?
  if [[ $status -ne 0 ]]; then
    echo "== Elasticsearch's last log lines"
    docker logs --tail 100 "$CONTAINER" 2>&1 || true
    echo "== the mock provider's log"
    cat "$work/provider.log" 2>/dev/null || true
  fi
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  docker rm -f "$CONTAINER" >/dev/null 2>&1 || true
  rm -rf "$work"
  exit "$status"
}
trap cleanup EXIT
step() { echo "== $*"; }
mask() { if [[ -n ${GITHUB_ACTIONS:-} ]]; then echo "::add-mask::$1"; fi; }

step "the mock provider and the stand-in (cargo build --example)"
cargo build --locked --example mock-provider --example es-standin
"$TARGET/debug/examples/mock-provider" --listen "127.0.0.1:$PROVIDER_PORT" >"$work/provider.log" 2>&1 &
pids+=($!)
provider="http://127.0.0.1:$PROVIDER_PORT"
curl -sS --retry 30 --retry-connrefused --retry-delay 1 -o /dev/null \
  -H 'Authorization: Bearer ping' -H 'Content-Type: application/json' \
  -d '{"model":"m","messages":[{"role":"user","content":"ping"}]}' "$provider/v1/chat/completions"
# The Pod stage's cluster: the stand-in on the kind network's gateway, which the Pods reach.
gateway=$(docker network inspect "$KIND_NETWORK" \
  --format '{{range .IPAM.Config}}{{.Gateway}} {{end}}' | tr ' ' '\n' | grep -m1 -E '^[0-9]+\.')
"$TARGET/debug/examples/es-standin" --listen "$gateway:$STANDIN_PORT" >"$work/standin.log" 2>&1 &
pids+=($!)

step "Elasticsearch from $ES_IMAGE, security on, trial licence"
password=$(python3 -c 'import secrets; print(secrets.token_hex(16))')
mask "$password"
# A trial licence: creating an endpoint of a third-party service needs Enterprise or trial
# (InferencePlugin.INFERENCE_API_FEATURE; CONTRACT §2.2 step 5), and the image's default is basic.
docker run -d --name "$CONTAINER" --network host \
  -e discovery.type=single-node -e ES_JAVA_OPTS="-Xms1g -Xmx1g" -e ELASTIC_PASSWORD="$password" \
  -e xpack.license.self_generated.type=trial \
  "$ES_IMAGE" >/dev/null
# Security auto-configuration writes the HTTP CA at first start.
for _ in $(seq 180); do
  if docker exec "$CONTAINER" test -s /usr/share/elasticsearch/config/certs/http_ca.crt 2>/dev/null; then
    break
  fi
  sleep 1
done
docker cp "$CONTAINER:/usr/share/elasticsearch/config/certs/http_ca.crt" "$work/ca.crt"
es="https://localhost:9200"
curl -sS --fail --retry 60 --retry-all-errors --retry-delay 2 --cacert "$work/ca.crt" \
  -u "elastic:$password" "$es/_cluster/health?wait_for_status=yellow&timeout=60s" >/dev/null
curl -sS --fail --cacert "$work/ca.crt" -u "elastic:$password" "$es/" |
  python3 -c 'import json,sys; print("Elasticsearch", json.load(sys.stdin)["version"]["number"])'

step "an API key with the operator's privileges (README), and manage_pipeline for the suite's own pipelines"
key=$(curl -sS --fail --cacert "$work/ca.crt" -u "elastic:$password" -X POST "$es/_security/api_key" \
  -H 'Content-Type: application/json' \
  -d '{"name":"es-inference-operator-e2e","role_descriptors":{"inference":{"cluster":["manage_inference","monitor_inference","cluster:monitor/main","manage_pipeline"]}}}' |
  python3 -c 'import json,sys; print(json.load(sys.stdin)["encoded"])')
mask "$key"

step "tests/es_contract: the stand-in's contracts of Elasticsearch, asserted on this one"
# Before the suite, which runs even when a contract broke: both results are wanted.
contract=0
E2E_ELASTICSEARCH_REAL=1 \
  E2E_ELASTICSEARCH_URL="$es" \
  E2E_ELASTICSEARCH_API_KEY="$key" \
  E2E_ELASTICSEARCH_CA_FILE="$work/ca.crt" \
  E2E_PROVIDER_URL="$provider" \
  cargo test --locked --test es_contract -- contracts_on_a_real_elasticsearch || contract=$?

step "tests/e2e"
E2E_KUBECONFIG=${KUBECONFIG:-$HOME/.kube/config} \
  E2E_ELASTICSEARCH_URL="$es" \
  E2E_ELASTICSEARCH_API_KEY="$key" \
  E2E_ELASTICSEARCH_CA_FILE="$work/ca.crt" \
  E2E_PROVIDER_URL="$provider" \
  E2E_PROVIDER_API_KEY=sk-e2e-mock-FIRST-KEY-0001 \
  E2E_PROVIDER_API_KEY_ROTATED=sk-e2e-mock-ROTATED-KEY-0002 \
  E2E_IMAGE="$IMAGE" \
  E2E_POD_ELASTICSEARCH_URL="http://$gateway:$STANDIN_PORT" \
  HELM="$HELM" \
  cargo test --locked --test e2e -- "$@"
if [[ $contract -ne 0 ]]; then
  echo "== tests/es_contract failed (above)"
  exit "$contract"
fi
