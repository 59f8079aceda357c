package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

// ClusterImagePolicy says which images must be signed, and by whom.
//
// An image is governed by every policy whose images globs match it (and
// whose match selectors match the object being admitted). It must satisfy
// ALL of those policies; within one policy, ANY one authority suffices.
// Images no policy governs are decided by the webhook's --no-match-policy.
//
// Globs match the fully qualified reference without tag or digest: "nginx"
// means "index.docker.io/library/nginx"; "*" matches within one path
// segment, "**" across segments.
//
// +kubebuilder:object:root=true
// +kubebuilder:resource:scope=Cluster,shortName=cip
// +kubebuilder:subresource:status
// +kubebuilder:printcolumn:name="Mode",type=string,JSONPath=`.spec.mode`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Verified",type=integer,JSONPath=`.status.running.verified`,description="Running images that satisfy the policy"
// +kubebuilder:printcolumn:name="Violations",type=integer,JSONPath=`.status.running.violations`,description="Running images the policy would not admit now"
// +kubebuilder:printcolumn:name="Break-Glass",type=integer,JSONPath=`.status.running.breakGlass`,description="Running images admitted by break-glass",priority=1
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type ClusterImagePolicy struct {
	metav1.TypeMeta `json:",inline"`
	// +optional
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// +required
	Spec ClusterImagePolicySpec `json:"spec"`
	// +optional
	Status ClusterImagePolicyStatus `json:"status,omitempty"`
}

// ClusterImagePolicySpec is what a policy requires.
type ClusterImagePolicySpec struct {
	// Images are the globs this policy governs. A glob matches the fully
	// qualified reference without tag or digest ("nginx" means
	// "index.docker.io/library/nginx"); "*" matches within one path
	// segment, "**" across segments. An image matching any glob is governed.
	// +required
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=100
	Images []ImageGlob `json:"images"`

	// Authorities are the signers this policy trusts. ANY one valid
	// signature from any one authority satisfies the policy.
	// +required
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=20
	// +kubebuilder:validation:XValidation:rule="self.all(a, self.exists_one(b, b.name == a.name))",message="authority names must be unique within a policy: rename the duplicate"
	// +kubebuilder:validation:XValidation:rule="!self.exists(a, has(a.static) && a.static.action == 'fail') || size(self) == 1",message="a static fail authority denies every image the policy governs: make it the policy's only authority"
	Authorities []Authority `json:"authorities"`

	// Mode is Enforce (deny images that fail the policy) or Warn (admit
	// them with a warning: roll out a new policy with Warn first).
	// +optional
	// +kubebuilder:default=Enforce
	Mode PolicyMode `json:"mode,omitempty"`

	// Match narrows the objects this policy applies to. Empty: all.
	// +optional
	Match *PolicyMatch `json:"match,omitempty"`

	// BreakGlass lets workloads that fail this policy be admitted in an
	// emergency. Unset: never; the signet.dev/break-glass annotation is
	// ignored and denials say so.
	// +optional
	BreakGlass *BreakGlass `json:"breakGlass,omitempty"`
}

// BreakGlassAnnotation, set on a Pod (or on a workload's Pod template, so
// every Pod it creates carries it) to a reason of at least
// MinBreakGlassReason characters, admits images that fail policies which
// allow break-glass. Each such admission is recorded: a warning to the
// client, an Event on the object, a warning log line with the requesting
// user, and the signet_break_glass_admissions_total metric.
const BreakGlassAnnotation = "signet.dev/break-glass"

// MinBreakGlassReason is the shortest break-glass reason accepted.
const MinBreakGlassReason = 10

// BreakGlass is a policy's emergency exit.
type BreakGlass struct {
	// Allowed admits objects annotated signet.dev/break-glass with a
	// reason (at least 10 characters, e.g. "INC-4711: signing service
	// down") despite failing this policy. Anyone allowed to create the
	// workload can then use it: restrict who may set the annotation with
	// RBAC or a ValidatingAdmissionPolicy (docs/break-glass.md).
	// +required
	Allowed bool `json:"allowed"`
}

// ImageGlob is one image glob.
type ImageGlob struct {
	// Glob, e.g. "123456789012.dkr.ecr.*.amazonaws.com/prod/**": a
	// repository without tag or digest, every tag and digest of which the
	// policy governs.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=255
	// +kubebuilder:validation:XValidation:rule="self.matches('^[a-z0-9._/:*@-]*$')",message="glob may contain only lower-case letters, digits, '.', '_', '-', '/', ':' (a registry port) and '*'"
	// +kubebuilder:validation:XValidation:rule="!self.contains('@') && !self.matches(':[^/]*$')",message="glob must not contain a tag or digest: remove it; the policy governs every tag and digest of a matching repository"
	Glob string `json:"glob"`
}

// Authority is one trusted signer: a cosign key (key), AWS Signer
// signing profiles (signer), or a static answer (static) that needs no
// signature. Exactly one of the three is set.
// +kubebuilder:validation:XValidation:rule="(has(self.key) ? 1 : 0) + (has(self.signer) ? 1 : 0) + (has(self.static) ? 1 : 0) == 1",message="set exactly one of key (a cosign key: kms, data or secretRef), signer (AWS Signer signing profiles) or static (pass or fail without a signature)"
type Authority struct {
	// Name identifies the authority in denials and metrics; a DNS label,
	// unique within the policy.
	// +required
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:XValidation:rule="self.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?$')",message="name must be a DNS label: lower-case letters, digits and '-', starting and ending with a letter or digit"
	Name string `json:"name"`

	// Key trusts cosign signatures made with one key.
	// +optional
	Key *KeyAuthority `json:"key,omitempty"`

	// Signer trusts AWS Signer (Notation) signatures from signing profiles.
	// +optional
	Signer *SignerAuthority `json:"signer,omitempty"`

	// Static decides without a signature: pass is an allow-list (the
	// images count as governed, also under --no-match-policy=deny), fail
	// a deny-list that denies them with its message.
	// +optional
	Static *StaticAuthority `json:"static,omitempty"`
}

// StaticAction is what a static authority answers.
// +kubebuilder:validation:Enum=pass;fail
type StaticAction string

// Static actions.
const (
	StaticPass StaticAction = "pass"
	StaticFail StaticAction = "fail"
)

// StaticAuthority passes or fails every image the policy governs.
// +kubebuilder:validation:XValidation:rule="self.action == 'fail' ? has(self.message) : !has(self.message)",message="a static fail authority needs a message telling users what to do instead (e.g. where to get images); pass takes no message"
type StaticAuthority struct {
	// Action is pass (admit with no signature) or fail (deny).
	// +required
	Action StaticAction `json:"action"`

	// Message is the denial users read for fail, e.g. "Docker Hub images
	// are not allowed: use 123456789012.dkr.ecr.us-east-1.amazonaws.com/hub/...".
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=1024
	Message string `json:"message,omitempty"`
}

// KeyAuthority is a cosign verification key. Exactly one of kms, data or
// secretRef is set.
// +kubebuilder:validation:XValidation:rule="(has(self.kms) ? 1 : 0) + (has(self.data) ? 1 : 0) + (has(self.secretRef) ? 1 : 0) == 1",message="set exactly one of kms (an awskms:// key URI), data (a PEM public key) or secretRef (a Secret holding one)"
type KeyAuthority struct {
	// KMS is an AWS KMS key URI as cosign takes it: awskms:///KEY_ID,
	// awskms:///alias/NAME, awskms:///arn:aws:kms:REGION:ACCOUNT:key/ID or
	// an alias ARN. The public key is fetched when the policy loads and
	// refreshed periodically, never per admission.
	// +optional
	// +kubebuilder:validation:MaxLength=2048
	// +kubebuilder:validation:XValidation:rule="self.matches('^awskms://[^/]*/[^\\\\s]+$')",message="kms must be an AWS KMS key URI: awskms:///KEY_ID, awskms:///alias/NAME or awskms:///arn:aws:kms:REGION:ACCOUNT:key/KEY_ID"
	KMS string `json:"kms,omitempty"`

	// Data is a PEM-encoded public key (ECDSA P-256/P-384/P-521, RSA or Ed25519).
	// +optional
	// +kubebuilder:validation:MaxLength=16384
	// +kubebuilder:validation:XValidation:rule="self.contains('-----BEGIN ')",message="data must be a PEM-encoded public key (-----BEGIN PUBLIC KEY-----)"
	Data string `json:"data,omitempty"`

	// SecretRef names a Secret key holding a PEM-encoded public key.
	// +optional
	SecretRef *SecretKeyReference `json:"secretRef,omitempty"`

	// Attestations are in-toto attestations (cosign attest) the image must
	// also carry, each signed by this same key and bound to the image's
	// digest. The authority is satisfied only when its signature verifies
	// AND every attestation listed here is present, young enough and meets
	// its condition. Only key authorities take attestations.
	// +optional
	// +kubebuilder:validation:MaxItems=10
	// +listType=map
	// +listMapKey=name
	Attestations []AttestationRequirement `json:"attestations,omitempty"`
}

// AttestationRequirement is one attestation a key authority requires.
type AttestationRequirement struct {
	// Name identifies the requirement in denials; a DNS label, unique
	// within the authority.
	// +required
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:XValidation:rule="self.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?$')",message="name must be a DNS label: lower-case letters, digits and '-', starting and ending with a letter or digit"
	Name string `json:"name"`

	// PredicateType is the in-toto predicate type, as cosign attest --type
	// takes it: one of cosign's short names (vuln, slsaprovenance,
	// slsaprovenance02, slsaprovenance1, spdx, spdxjson, cyclonedx, link,
	// openvex, custom), mapped to the URI exactly as cosign maps it, or the
	// predicate type URI itself (e.g. https://slsa.dev/provenance/v1).
	// +required
	// +kubebuilder:validation:MaxLength=1024
	// +kubebuilder:validation:XValidation:rule="self in ['custom', 'slsaprovenance', 'slsaprovenance02', 'slsaprovenance1', 'spdx', 'spdxjson', 'cyclonedx', 'link', 'vuln', 'openvex'] || self.matches('^[a-zA-Z][a-zA-Z0-9+.-]*:[^\\\\s]+$')",message="predicateType must be one of cosign's short names (custom, slsaprovenance, slsaprovenance02, slsaprovenance1, spdx, spdxjson, cyclonedx, link, vuln, openvex) or a predicate type URI such as https://slsa.dev/provenance/v1"
	PredicateType string `json:"predicateType"`

	// MaxAge, when set, is how old the attestation may be: its age is
	// measured from the time the predicate records (vuln:
	// metadata.scanFinishedOn; slsaprovenance1: runDetails.metadata.finishedOn;
	// slsaprovenance/slsaprovenance02: metadata.buildFinishedOn; spdx:
	// creationInfo.created; cyclonedx: metadata.timestamp; custom and
	// openvex: timestamp). An attestation of another type, or one without
	// that field, cannot prove its age and fails a maxAge. See
	// docs/attestations.md.
	// +optional
	// +kubebuilder:validation:XValidation:rule="duration(self) > duration('0s')",message="maxAge must be a positive duration, e.g. 168h"
	MaxAge *metav1.Duration `json:"maxAge,omitempty"`

	// Condition, when set, is a CEL expression that must be true for the
	// attestation: `predicate` is the decoded predicate, `statement` the
	// in-toto statement without it (_type, predicateType, subject). It is
	// compiled, and its cost bounded with Kubernetes' CEL limits, when the
	// policy is applied. E.g. for vuln:
	// !predicate.scanner.result.Results.exists(r, has(r.Vulnerabilities) && r.Vulnerabilities.exists(v, v.Severity == 'CRITICAL'))
	// +optional
	// +kubebuilder:validation:MaxLength=4096
	Condition string `json:"condition,omitempty"`
}

// SecretKeyReference names one key of one Secret. The webhook's service
// account must be allowed to read it.
type SecretKeyReference struct {
	// Name of the Secret.
	// +required
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:XValidation:rule="self.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?([.][a-z0-9]([-a-z0-9]*[a-z0-9])?)*$')",message="name must be a Secret name: lower-case letters, digits, '-' and '.', starting and ending with a letter or digit"
	Name string `json:"name"`
	// Namespace of the Secret.
	// +required
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:XValidation:rule="self.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?$')",message="namespace must be a namespace name: lower-case letters, digits and '-', starting and ending with a letter or digit"
	Namespace string `json:"namespace"`
	// Key in the Secret's data whose value is the PEM-encoded public key,
	// e.g. cosign.pub.
	// +required
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:XValidation:rule="self.matches('^[-._a-zA-Z0-9]+$')",message="key must be a Secret data key: letters, digits, '-', '_' and '.', e.g. cosign.pub"
	Key string `json:"key"`
}

// SignerAuthority trusts AWS Signer signatures chained to AWS Signer's
// root for the profile ARN's partition.
type SignerAuthority struct {
	// Profiles are signing-profile ARNs
	// (arn:PARTITION:signer:REGION:ACCOUNT:/signing-profiles/NAME), which
	// trust every version of the profile, or profile-version ARNs
	// (.../signing-profiles/NAME/VERSION), which trust exactly that version.
	// +required
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=20
	// +kubebuilder:validation:items:MaxLength=256
	// +kubebuilder:validation:items:XValidation:rule="self.matches('^arn:(aws|aws-us-gov|aws-cn):signer:[a-z0-9-]+:[0-9]{12}:/signing-profiles/[A-Za-z0-9_]{2,64}(/[A-Za-z0-9]{1,64})?$')",message="must be an AWS Signer signing-profile ARN, arn:PARTITION:signer:REGION:ACCOUNT:/signing-profiles/NAME[/VERSION], with partition aws, aws-us-gov or aws-cn; wildcards are not allowed"
	Profiles []string `json:"profiles"`

	// Revocation is how Signer's revocation status is used: Enforce (deny
	// revoked signatures, and deny when Signer cannot be reached),
	// BestEffort (deny revoked; admit with a warning when Signer cannot be
	// reached) or Skip.
	// +optional
	// +kubebuilder:default=Enforce
	Revocation RevocationMode `json:"revocation,omitempty"`

	// Attestations cannot be required of a signer authority: Signet checks
	// in-toto attestations made with cosign attest, signed by a cosign key.
	// The field exists only so that a policy listing them here is refused
	// with that reason instead of "unknown field"; list them under a key
	// authority's key.attestations.
	// +optional
	// +kubebuilder:validation:XValidation:rule="size(self) == 0",message="a signer authority cannot require attestations: Signet checks in-toto attestations made with cosign attest and a cosign key; list them under key.attestations of a key authority that trusts the key your pipeline attests with"
	Attestations []runtime.RawExtension `json:"attestations,omitempty"`
}

// RevocationMode is how AWS Signer revocation is checked.
// +kubebuilder:validation:Enum=Enforce;BestEffort;Skip
type RevocationMode string

// Revocation modes.
const (
	RevocationEnforce    RevocationMode = "Enforce"
	RevocationBestEffort RevocationMode = "BestEffort"
	RevocationSkip       RevocationMode = "Skip"
)

// PolicyMode is what a failing image gets.
// +kubebuilder:validation:Enum=Enforce;Warn
type PolicyMode string

// Policy modes.
const (
	ModeEnforce PolicyMode = "Enforce"
	ModeWarn    PolicyMode = "Warn"
)

// PolicyMatch narrows which objects a policy applies to.
type PolicyMatch struct {
	// NamespaceSelector selects the namespaces of the objects.
	// +optional
	NamespaceSelector *metav1.LabelSelector `json:"namespaceSelector,omitempty"`
	// ObjectSelector selects objects by their labels.
	// +optional
	ObjectSelector *metav1.LabelSelector `json:"objectSelector,omitempty"`
}

// ConditionReady is True when every authority of the policy is loaded
// (keys fetched, globs compiled) and the policy is enforced as written.
// While it is False, images the policy governs are denied with its reason.
const ConditionReady = "Ready"

// ClusterImagePolicyStatus is what Signet observed of the policy.
type ClusterImagePolicyStatus struct {
	// ObservedGeneration is the generation the conditions describe.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
	// Conditions: Ready.
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`
	// Running counts the images of running Pods this policy governs, as
	// Signet's continuous validation last found them (judged at the digest
	// each Pod runs).
	// +optional
	Running *RunningImages `json:"running,omitempty"`
}

// RunningImages counts running images by what continuous validation found.
type RunningImages struct {
	// Verified images satisfy this policy.
	Verified int32 `json:"verified"`
	// Violations are images this policy would not admit now.
	Violations int32 `json:"violations"`
	// Unverifiable images could not be checked (a registry or AWS did not
	// answer); they are not violations.
	Unverifiable int32 `json:"unverifiable"`
	// BreakGlass images fail this policy and run because their Pods carry
	// a break-glass reason the policy allows.
	BreakGlass int32 `json:"breakGlass"`
	// LastEvaluated is when the counts were taken.
	LastEvaluated metav1.Time `json:"lastEvaluated"`
}

// ClusterImagePolicyList is a list of ClusterImagePolicies.
// +kubebuilder:object:root=true
type ClusterImagePolicyList struct {
	metav1.TypeMeta `json:",inline"`
	// +optional
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []ClusterImagePolicy `json:"items"`
}
