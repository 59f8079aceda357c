// Package e2e holds Signet's end-to-end tests: they drive the real
// kube-apiserver of the local stack (or, with `make e2e-kind`, a kind
// cluster) and assert what users see.
package e2e
