#!/usr/bin/env bash
# `make e2e-kind`: the test/e2e suite against Signet installed with Helm in a
# kind cluster — the second target of the same suite `make test` runs against
# the local control plane. Needs a Docker engine (kind runs Kubernetes nodes
# as containers).
#
#   1. create the kind cluster (hack/kind/cluster.yaml), or reuse it;
#   2. start the test servers (distribution registry, referrers registry,
#      KMS test server) inside the node, on ports the host sees at 127.0.0.1;
#   3. build the webhook image with the Dockerfile and load it into the node;
#   4. helm install charts/signet with hack/kind/values.yaml and wait;
#   5. go test ./test/e2e with SIGNET_E2E_TARGET=cluster;
#   6. delete the cluster (KEEP_CLUSTER=1 keeps it for debugging).
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cluster=${KIND_CLUSTER:-signet-e2e}
node="$cluster-control-plane"
state="$root/.stack-kind"
bin="$root/bin"
release=signet
namespace=signet-system

log() { printf 'e2e-kind: %s\n' "$*" >&2; }
die() { printf 'e2e-kind: error: %s\n' "$*" >&2; exit 1; }

command -v docker >/dev/null || die "no docker on PATH: kind needs a Docker engine. Without one, run the same suite against the local control plane with 'make test'."
docker info >/dev/null 2>&1 || die "the Docker engine does not answer ('docker info' failed); start it and retry"
"$root/hack/tools.sh" kind helm kubectl cosign >/dev/null

mkdir -p "$state/bin" "$state/logs"
kubeconfig="$state/kubeconfig"

cleanup() {
	if [[ "${KEEP_CLUSTER:-}" == 1 ]]; then
		log "keeping cluster $cluster (KUBECONFIG=$kubeconfig); delete it with: bin/kind delete cluster --name $cluster"
	else
		"$bin/kind" delete cluster --name "$cluster" >/dev/null 2>&1 || true
	fi
}
trap cleanup EXIT

# 1. The cluster. KIND_NODE_IMAGE pins a node image (kind's default otherwise).
if ! "$bin/kind" get clusters 2>/dev/null | grep -qx "$cluster"; then
	log "creating kind cluster $cluster"
	"$bin/kind" create cluster --name "$cluster" --config "$root/hack/kind/cluster.yaml" \
		--kubeconfig "$kubeconfig" --wait 120s ${KIND_NODE_IMAGE:+--image "$KIND_NODE_IMAGE"}
else
	"$bin/kind" export kubeconfig --name "$cluster" --kubeconfig "$kubeconfig"
fi
kubectl() { "$bin/kubectl" --kubeconfig "$kubeconfig" "$@"; }

# 2. Test servers, static binaries run inside the node's network namespace.
log "starting the test servers in $node"
(cd "$root" &&
	CGO_ENABLED=0 GOOS=linux go build -o "$state/bin/kms-server" ./test/cmd/kms-server &&
	CGO_ENABLED=0 GOOS=linux go build -o "$state/bin/oci-registry" ./test/cmd/oci-registry)
docker cp "$(readlink -f "$bin/registry")" "$node:/usr/local/bin/signet-registry"
docker cp "$state/bin/kms-server" "$node:/usr/local/bin/signet-kms-server"
docker cp "$state/bin/oci-registry" "$node:/usr/local/bin/signet-oci-registry"
docker exec "$node" sh -c 'mkdir -p /var/lib/signet-registry && cat > /etc/signet-registry.yaml <<EOF
version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: /var/lib/signet-registry
  delete:
    enabled: true
http:
  addr: 0.0.0.0:5001
EOF'
docker exec "$node" sh -c 'pkill -f /usr/local/bin/signet- || true'
docker exec -d "$node" sh -c '/usr/local/bin/signet-registry serve /etc/signet-registry.yaml >/var/log/signet-registry.log 2>&1'
docker exec -d "$node" sh -c '/usr/local/bin/signet-kms-server --listen=0.0.0.0:5002 --addr-file=/tmp/kms.addr >/var/log/signet-kms.log 2>&1'
docker exec -d "$node" sh -c '/usr/local/bin/signet-oci-registry --listen=0.0.0.0:5003 --addr-file=/tmp/oci.addr >/var/log/signet-oci.log 2>&1'
for url in http://127.0.0.1:5001/v2/ http://127.0.0.1:5003/v2/; do
	for _ in $(seq 60); do curl -fsS "$url" >/dev/null 2>&1 && break; sleep 0.5; done
	curl -fsS "$url" >/dev/null || die "test server at $url does not answer (logs: docker exec $node cat /var/log/signet-*.log)"
done

# 3. The image, built with the project's Dockerfile.
log "building the webhook image"
DOCKER_BUILDKIT=1 docker build --target webhook -t signet/webhook:e2e "$root"
"$bin/kind" load docker-image signet/webhook:e2e --name "$cluster"

# 4. Signet, installed as users install it.
log "installing the chart"
"$bin/helm" --kubeconfig "$kubeconfig" upgrade --install "$release" "$root/charts/signet" \
	--namespace "$namespace" --create-namespace \
	--values "$root/hack/kind/values.yaml" --wait --timeout 5m
kubectl -n "$namespace" rollout status deployment --timeout=120s

# 5. The suite, pointed at the cluster through a stack env file.
cat >"$state/env" <<EOF
# Written by hack/e2e-kind.sh for the cluster target of test/e2e.
export KUBECONFIG=$kubeconfig
export SIGNET_REGISTRY=127.0.0.1:5001
export SIGNET_REFERRERS_REGISTRY=127.0.0.1:5003
export AWS_ENDPOINT_URL_KMS=http://127.0.0.1:5002
export AWS_REGION=us-east-1
export AWS_ACCESS_KEY_ID=signet-test
export AWS_SECRET_ACCESS_KEY=signet-test-secret
export AWS_EC2_METADATA_DISABLED=true
export AWS_CONFIG_FILE=/dev/null
export AWS_SHARED_CREDENTIALS_FILE=/dev/null
EOF
log "running test/e2e against the cluster"
cd "$root"
SIGNET_STACK_DIR="$state" SIGNET_E2E_TARGET=cluster SIGNET_E2E_NAMESPACE="$namespace" \
	SIGNET_E2E_RELEASE="$release" SIGNET_E2E_EXEMPT=e2e-exempt \
	go test -count=1 -timeout 30m -v ./test/e2e/ 2>&1 | tee "$state/logs/e2e.log"
