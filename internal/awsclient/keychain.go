package awsclient

import (
	"github.com/google/go-containerregistry/pkg/authn"
)

// DefaultKeychain is Signet's default registry credentials: ECR tokens
// (IRSA, Pod Identity or whatever the SDK's chain finds) for ECR hosts,
// then the docker config ($DOCKER_CONFIG/config.json) for every other host.
// ECR comes first: a docker config naming the ecr-login credential helper
// would need a binary Signet's image does not ship. Request-scoped
// credentials (a Pod's imagePullSecrets) are put in front of this by
// oci.Client.Keychain.
func DefaultKeychain(ecr *ECRKeychain) authn.Keychain {
	return authn.NewMultiKeychain(ecr, authn.DefaultKeychain)
}
