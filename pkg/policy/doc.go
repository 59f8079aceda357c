// Package policy is Signet's domain: ClusterImagePolicies compiled into
// globs and authorities, the Evaluate function that judges a set of image
// references against them, the Verifier interface the signature schemes
// implement, and the verdict cache they share.
//
// It imports no controller-runtime, AWS SDK or admission code, so it runs
// the same in the webhook, in continuous validation and in the CLI, and is
// testable with no cluster.
package policy
