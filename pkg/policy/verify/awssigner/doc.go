// Package awssigner verifies AWS Signer (Notation) signatures in-process,
// for one authority of a ClusterImagePolicy that trusts signing profiles.
//
// Signatures made by AWS Signer (ECR managed signing, or `notation sign
// --plugin com.amazonaws.signer.notation.plugin`) are Notation signatures
// with the notary.x509.signingAuthority scheme, chained to AWS Signer's
// root CA, naming the verification plugin com.amazonaws.signer.notation.plugin
// and carrying the signing profile version and signing job as critical
// attributes. Notation hands those attributes, the trusted identities and the
// revocation check to that plugin.
//
// Signet runs notation-go's own verifier with:
//
//   - an in-memory trust policy (strict; registry scope "*"; the trust stores
//     signingAuthority:aws-signer-ts and/or signingAuthority:aws-us-gov-signer-ts
//     by the partitions of the trusted profiles; the trusted identities are
//     the profile ARNs themselves, which notation forwards to the plugin);
//   - an in-memory trust store holding AWS Signer's roots, embedded in the
//     binary or replaced from a PEM file;
//   - a plugin.Manager that hands out an in-process implementation of the
//     AWS plugin's verification half: trusted identity (profile ARNs) and
//     revocation (AWS Signer GetRevocationStatus, cached), with no plugin
//     binary and no plugin directory.
//
// notation.Verify finds the signatures (referrers API, then the referrers
// tag schema) and checks integrity, the chain to the roots, expiry, the
// chain's validity at the signing time, the plugin's verdicts and that the
// signed target descriptor is the image's. What each signature failed on is
// recorded as notation goes, so a denial names the real cause.
package awssigner
