package oci

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"oras.land/oras-go/v2/content"
	"oras.land/oras-go/v2/errdef"
	"oras.land/oras-go/v2/registry"
	orasremote "oras.land/oras-go/v2/registry/remote"
	"oras.land/oras-go/v2/registry/remote/auth"
	"oras.land/oras-go/v2/registry/remote/errcode"
)

// OrasRepository is an oras-go repository (what notation-go reads through)
// for repo, on the shared limited transport, with the request's
// credentials and the plain-HTTP rule. Build one per verification: its
// token cache holds only this request's credentials.
func (c *Client) OrasRepository(repo name.Repository, requestKeychain authn.Keychain) *orasremote.Repository {
	host := repo.RegistryStr()
	client := &auth.Client{
		Client:     &http.Client{Transport: c.transport},
		Credential: credentialFromKeychain(c.Keychain(requestKeychain), repo.Registry),
		Cache:      auth.NewCache(),
	}
	if c.userAgent != "" {
		client.SetUserAgent(c.userAgent)
	}
	r := &orasremote.Repository{
		Client:           client,
		Reference:        registry.Reference{Registry: host, Repository: repo.RepositoryStr()},
		PlainHTTP:        c.PlainHTTP(host),
		MaxMetadataBytes: c.limits.MaxResponseBytes + 1,
	}
	if c.LacksReferrersAPI(host) {
		// Referrers then reads the tag schema only.
		_ = r.SetReferrersCapability(false) // a new repository: cannot fail
	}
	return r
}

// MaxMetadataBytes is one byte over the transport's cap on purpose:
// oras-go cuts metadata bodies (referrers listings) at MaxMetadataBytes
// without saying so, and a cut index then fails to decode ("unexpected
// EOF"), which reads like a broken registry. One byte more lets the
// transport's cap trip first, as the LimitError it is.
func metadataLimit(repo *orasremote.Repository) int64 { return repo.MaxMetadataBytes - 1 }

// credentialFromKeychain adapts a go-containerregistry keychain (docker
// config, ECR, pull secrets) to oras-go. Credentials go only to the
// repository's own registry.
func credentialFromKeychain(kc authn.Keychain, reg name.Registry) auth.CredentialFunc {
	return func(ctx context.Context, hostport string) (auth.Credential, error) {
		if hostport != reg.RegistryStr() {
			return auth.EmptyCredential, nil
		}
		authenticator, err := authn.Resolve(ctx, kc, reg)
		if err != nil {
			return auth.EmptyCredential, fmt.Errorf("resolving credentials for %s: %w", hostport, err)
		}
		cfg, err := authn.Authorization(ctx, authenticator)
		if err != nil {
			return auth.EmptyCredential, fmt.Errorf("resolving credentials for %s: %w", hostport, err)
		}
		return auth.Credential{
			Username:     cfg.Username,
			Password:     cfg.Password,
			RefreshToken: cfg.IdentityToken,
			AccessToken:  cfg.RegistryToken,
		}, nil
	}
}

// Referrers passes fn the manifests that refer to subject with
// artifactType, each once: first those the referrers API lists, then those
// in the referrers tag schema's index (sha256-<hex>). A registry without
// the API is read through the tag schema only; a registry with it is read
// through both, because referrers pushed before the registry had the API
// (ECR before 2024) exist only under the tag.
//
// The API's pagination is followed for at most limits.MaxReferrerPages
// pages and limits.MaxReferrers entries; past either, the listing stops
// with a LimitError (a registry must not keep Signet paging forever).
//
// repo must come from OrasRepository for this call: Referrers pins its
// referrers capability. An error fn returns stops the listing and is
// returned as is.
func Referrers(ctx context.Context, repo *orasremote.Repository, subject ocispec.Descriptor, artifactType string, limits Limits, fn func([]ocispec.Descriptor) error) error {
	seen := map[digest.Digest]bool{}
	var fnErr error
	emit := func(descs []ocispec.Descriptor) error {
		var fresh []ocispec.Descriptor
		for _, d := range descs {
			if !seen[d.Digest] {
				seen[d.Digest] = true
				fresh = append(fresh, d)
			}
		}
		if len(fresh) == 0 {
			return nil
		}
		fnErr = fn(fresh)
		return fnErr
	}

	if limits.MaxReferrerPages <= 0 {
		limits.MaxReferrerPages = DefaultLimits.MaxReferrerPages
	}
	if limits.MaxReferrers <= 0 {
		limits.MaxReferrers = DefaultLimits.MaxReferrers
	}
	pages, listed := 0, 0
	page := func(descs []ocispec.Descriptor) error {
		pages++
		listed += len(descs)
		if pages > limits.MaxReferrerPages {
			return &LimitError{What: "referrer pages", Limit: int64(limits.MaxReferrerPages)}
		}
		if listed > limits.MaxReferrers {
			return &LimitError{What: "referrers listed", Limit: int64(limits.MaxReferrers)}
		}
		return emit(descs)
	}

	// Pinning the capability to "supported" makes oras-go ask the API and
	// report a registry without it (ErrUnsupported) instead of falling back
	// on its own, which would skip the tag schema on registries that have
	// the API. A repository already known to lack it goes to the tag schema.
	if repo.SetReferrersCapability(true) == nil {
		err := repo.Referrers(ctx, subject, artifactType, page)
		if fnErr != nil {
			return fnErr
		}
		if IsLimit(err) {
			return fmt.Errorf("listing referrers of %s: %w", subject.Digest, err)
		}
		if err != nil && !errors.Is(err, errdef.ErrUnsupported) {
			return fmt.Errorf("listing referrers of %s: %w", subject.Digest, err)
		}
	}

	descs, err := referrersByTag(ctx, repo, subject, artifactType)
	if err != nil {
		return err
	}
	return emit(descs)
}

// referrersByTag reads the referrers tag schema's index for subject.
func referrersByTag(ctx context.Context, repo *orasremote.Repository, subject ocispec.Descriptor, artifactType string) ([]ocispec.Descriptor, error) {
	tag := ReferrersTag(subject.Digest)
	desc, rc, err := repo.FetchReference(ctx, tag)
	if errors.Is(err, errdef.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading referrers tag %s: %w", tag, err)
	}
	defer rc.Close()
	if limit := metadataLimit(repo); limit > 0 && desc.Size > limit {
		return nil, &LimitError{What: "response body", Limit: limit, URL: "referrers tag " + tag}
	}
	b, err := content.ReadAll(rc, desc)
	if errors.Is(err, content.ErrMismatchedDigest) {
		return nil, &MalformedError{Err: fmt.Errorf("referrers tag %s does not match its digest %s", tag, desc.Digest)}
	}
	if err != nil {
		return nil, fmt.Errorf("reading referrers tag %s: %w", tag, err)
	}
	var index ocispec.Index
	if err := json.Unmarshal(b, &index); err != nil {
		return nil, fmt.Errorf("referrers tag %s is not an image index: %w", tag, err)
	}
	var out []ocispec.Descriptor
	for _, d := range index.Manifests {
		if artifactType == "" || d.ArtifactType == artifactType {
			out = append(out, d)
		}
	}
	return out, nil
}

// ReferrersTag is the referrers tag schema's tag for d: <alg>-<encoded>,
// truncated as the distribution spec says.
func ReferrersTag(d digest.Digest) string {
	alg, enc := d.Algorithm().String(), d.Encoded()
	if len(alg) > 32 {
		alg = alg[:32]
	}
	if len(enc) > 64 {
		enc = enc[:64]
	}
	return alg + "-" + enc
}

// ClassifyORAS is Classify for errors from oras-go, which reports
// registry answers as errcode.ErrorResponse and errdef sentinels rather
// than go-containerregistry's transport.Error.
func ClassifyORAS(err error) Failure {
	if err == nil {
		return FailureNone
	}
	if IsLimit(err) {
		return FailureLimit
	}
	var er *errcode.ErrorResponse
	if errors.As(err, &er) {
		switch er.StatusCode {
		case http.StatusNotFound:
			return FailureNotFound
		case http.StatusUnauthorized, http.StatusForbidden:
			return FailureDenied
		}
		return FailureUnavailable
	}
	if errors.Is(err, errdef.ErrNotFound) {
		return FailureNotFound
	}
	return Classify(err)
}
