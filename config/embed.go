// Package config embeds Signet's generated manifests, so binaries can apply
// the exact schema the cluster enforces (the CLI validates policies with
// the CRD's own OpenAPI and CEL rules).
package config

import _ "embed"

// CRD is the generated ClusterImagePolicy CustomResourceDefinition.
//
//go:embed crd/bases/signet.dev_clusterimagepolicies.yaml
var CRD []byte
