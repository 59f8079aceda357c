#!/usr/bin/env bash
# Builds the pinned tools Signet's stack and tests need, once, into a per-user
# cache keyed by tool and version, and links them into ./bin.
#
#   hack/tools.sh                 the stack's tools (what `make stack-up` needs),
#                                 with node-packages unless SIGNET_STACK_NODE=false
#   hack/tools.sh cosign helm ... only the named tools
#   hack/tools.sh node-packages   the node's Debian packages (containerd, runc,
#                                 CNI plugins, iptables) through apt-get
#
# A fresh clone on the same machine reuses the cache; a new version builds anew.
# Everything is built from source through the Go module proxy.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cache=${SIGNET_TOOLS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/signet/tools}
bin="$root/bin"
mkdir -p "$cache" "$bin"

# Pinned versions. Changing one builds that tool again on the next run.
KUBE_VERSION=v1.37.1
ETCD_VERSION=v3.6.16
CONTROLLER_GEN_VERSION=v0.22.0
HELM_VERSION=v3.22.0
DISTRIBUTION_VERSION=v3.0.0
COSIGN_V2_VERSION=v2.6.5
COSIGN_V3_VERSION=v3.1.3
NOTATION_VERSION=v1.3.2
# golangci-lint only for `make lint` (not a stack tool).
GOLANGCI_LINT_VERSION=v2.15.0
# kind only for `make e2e-kind` (needs a Docker engine; not built by default).
KIND_VERSION=v0.33.0

STACK_TOOLS=(etcd kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy kubectl controller-gen helm registry)

# The node's runtime comes from Debian, not from source: containerd 1.6 (CRI
# v1) and runc 1.1 (built with seccomp) run kubelet 1.37's Pods; the CNI
# plugins give them addresses on the stack's bridge; kubelet and kube-proxy
# program iptables.
NODE_PACKAGES=(containerd runc containernetworking-plugins iptables)

log() { printf 'tools: %s\n' "$*" >&2; }
die() { printf 'tools: error: %s\n' "$*" >&2; exit 1; }

# install NAME VERSION BUILD-FUNCTION: runs the build into a temporary folder
# and moves it into the cache only when it succeeded, so a broken or
# interrupted build never leaves a half-written binary behind.
install() {
	local name=$1 version=$2 build=$3
	local dir="$cache/$name-$version"
	if [[ ! -x "$dir/$name" ]]; then
		log "building $name $version (cached in $dir)"
		local tmp
		tmp=$(mktemp -d "$cache/.build-$name-XXXXXX")
		local start=$SECONDS
		if ! "$build" "$tmp" "$version" >"$tmp/build.log" 2>&1; then
			tail -n 30 "$tmp/build.log" >&2
			rm -rf "$tmp"
			die "building $name $version failed (log above). Check that the Go module proxy is reachable and retry: hack/tools.sh $name"
		fi
		rm -f "$tmp/build.log"
		rm -rf "$dir"
		mv "$tmp" "$dir"
		log "built $name $version in $((SECONDS - start))s"
	fi
	ln -sfn "$dir/$name" "$bin/$name"
}

# go_install OUT PACKAGE@VERSION: a plain `go install` for modules that build
# as published (no replace directives to honour).
go_install() {
	GOBIN="$1" CGO_ENABLED=0 go install -trimpath -ldflags=-s "$2"
}

kube_ldflags() {
	local v=$1 minor
	minor=${v#v1.}
	minor=${minor%%.*}
	local p=k8s.io/component-base/version
	echo "-s -X $p.gitVersion=$v -X $p.gitMajor=1 -X $p.gitMinor=$minor -X $p.gitTreeState=clean -X $p.buildDate=1970-01-01T00:00:00Z"
}

build_kube() { # OUT VERSION CMD
	(cd "$root/hack/tools/kube" &&
		CGO_ENABLED=0 go build -trimpath -ldflags "$(kube_ldflags "$2")" -o "$1/$3" "k8s.io/kubernetes/cmd/$3")
}
build_kube_apiserver() { build_kube "$1" "$2" kube-apiserver; }
build_kube_controller_manager() { build_kube "$1" "$2" kube-controller-manager; }
build_kube_scheduler() { build_kube "$1" "$2" kube-scheduler; }
build_kubelet() { build_kube "$1" "$2" kubelet; }
build_kube_proxy() { build_kube "$1" "$2" kube-proxy; }
build_kubectl() { build_kube "$1" "$2" kubectl; }
build_etcd() { (cd "$root/hack/tools/etcd" && CGO_ENABLED=0 go build -trimpath -ldflags=-s -o "$1/etcd" .); }
build_controller_gen() { go_install "$1" "sigs.k8s.io/controller-tools/cmd/controller-gen@$2"; }
build_helm() { go_install "$1" "helm.sh/helm/v3/cmd/helm@$2"; }
build_registry() { go_install "$1" "github.com/distribution/distribution/v3/cmd/registry@$2"; }
build_cosign() { go_install "$1" "github.com/sigstore/cosign/v2/cmd/cosign@$2"; }
build_cosign3() { go_install "$1" "github.com/sigstore/cosign/v3/cmd/cosign@$2" && mv "$1/cosign" "$1/cosign3"; }
build_golangci_lint() { go_install "$1" "github.com/golangci/golangci-lint/v2/cmd/golangci-lint@$2"; }
build_kind() { go_install "$1" "sigs.k8s.io/kind@$2"; }
build_notation() { (cd "$root/hack/tools/notation" && CGO_ENABLED=0 go build -trimpath -ldflags=-s -o "$1/notation" github.com/notaryproject/notation/cmd/notation); }

# node_packages installs NODE_PACKAGES with apt-get unless every one is
# installed already (then it costs nothing, and needs no network).
node_packages() {
	local missing=()
	for p in "${NODE_PACKAGES[@]}"; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
	done
	[[ ${#missing[@]} -eq 0 ]] && return
	command -v apt-get >/dev/null || die "the node needs the packages ${missing[*]} and this is not a Debian-like system; install them, or run the stack without a node: SIGNET_STACK_NODE=false"
	log "installing ${missing[*]} with apt-get"
	local sudo=()
	[[ $(id -u) -eq 0 ]] || sudo=(sudo)
	"${sudo[@]}" apt-get update -qq || die "apt-get update failed"
	DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${NODE_PACKAGES[@]}" >/dev/null ||
		die "apt-get install ${NODE_PACKAGES[*]} failed (output above)"
}

one() {
	case $1 in
	node-packages) node_packages ;;
	etcd) install etcd "$ETCD_VERSION" build_etcd ;;
	kube-apiserver) install kube-apiserver "$KUBE_VERSION" build_kube_apiserver ;;
	kube-controller-manager) install kube-controller-manager "$KUBE_VERSION" build_kube_controller_manager ;;
	kube-scheduler) install kube-scheduler "$KUBE_VERSION" build_kube_scheduler ;;
	kubelet) install kubelet "$KUBE_VERSION" build_kubelet ;;
	kube-proxy) install kube-proxy "$KUBE_VERSION" build_kube_proxy ;;
	kubectl) install kubectl "$KUBE_VERSION" build_kubectl ;;
	controller-gen) install controller-gen "$CONTROLLER_GEN_VERSION" build_controller_gen ;;
	helm) install helm "$HELM_VERSION" build_helm ;;
	registry) install registry "$DISTRIBUTION_VERSION" build_registry ;;
	cosign) install cosign "$COSIGN_V2_VERSION" build_cosign ;;
	cosign3) install cosign3 "$COSIGN_V3_VERSION" build_cosign3 ;;
	notation) install notation "$NOTATION_VERSION" build_notation ;;
	kind) install kind "$KIND_VERSION" build_kind ;;
	golangci-lint) install golangci-lint "$GOLANGCI_LINT_VERSION" build_golangci_lint ;;
	*) die "unknown tool $1 (known: ${STACK_TOOLS[*]} node-packages cosign cosign3 notation kind golangci-lint)" ;;
	esac
}

command -v go >/dev/null || die "Go is not installed; install Go 1.26 and retry"
if [[ $# -eq 0 ]]; then
	set -- "${STACK_TOOLS[@]}"
	# The node's packages too, unless the stack runs without a node.
	[[ ${SIGNET_STACK_NODE:-true} == false ]] || set -- node-packages "$@"
fi
for t in "$@"; do one "$t"; done
