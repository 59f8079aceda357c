package awsclient

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ecr"
	"github.com/google/go-containerregistry/pkg/authn"
	"golang.org/x/sync/singleflight"

	"github.com/signet-dev/signet/internal/expiring"
)

// ECR is the part of the ECR API Signet uses, with the SDK's exact
// signature so *ecr.Client satisfies it.
type ECR interface {
	GetAuthorizationToken(ctx context.Context, params *ecr.GetAuthorizationTokenInput, optFns ...func(*ecr.Options)) (*ecr.GetAuthorizationTokenOutput, error)
}

var _ ECR = (*ecr.Client)(nil)

// ECRRegistry is what an ECR registry host names.
type ECRRegistry struct {
	Account string
	Region  string
	FIPS    bool
}

// ecrHost matches private ECR registry hosts in every partition:
//
//	123456789012.dkr.ecr.us-east-1.amazonaws.com        (commercial, GovCloud)
//	123456789012.dkr.ecr-fips.us-gov-west-1.amazonaws.com
//	123456789012.dkr.ecr.cn-north-1.amazonaws.com.cn    (China)
//	123456789012.dkr-ecr.us-east-1.on.aws               (dual-stack)
//	123456789012.dkr-ecr-fips.us-east-1.on.aws
var ecrHost = regexp.MustCompile(`^(\d{12})\.dkr[.-]ecr(-fips)?\.([a-z0-9-]+)\.(?:amazonaws\.com(?:\.cn)?|on\.aws|sc2s\.sgov\.gov|c2s\.ic\.gov)$`)

// region is what an AWS region name looks like: us-east-1,
// us-gov-west-1, ap-southeast-5, us-isob-east-1. The image host is the
// Pod author's to choose, so its region is checked before it names an
// endpoint or a cached client.
var region = regexp.MustCompile(`^[a-z]{2}(?:-[a-z]+){1,3}-[0-9]{1,2}$`)

// maxECRRegions bounds the ECR clients and tokens kept: one per region
// (and FIPS-ness) that images name. Past it, one is dropped and rebuilt
// when needed again.
const maxECRRegions = 32

// ParseECRHost reports whether host (with or without a port) is a private
// ECR registry in a well-formed region, and which.
func ParseECRHost(host string) (ECRRegistry, bool) {
	h := strings.ToLower(host)
	if hh, _, err := net.SplitHostPort(h); err == nil {
		h = hh
	}
	m := ecrHost.FindStringSubmatch(h)
	if m == nil || !region.MatchString(m[3]) {
		return ECRRegistry{}, false
	}
	return ECRRegistry{Account: m[1], FIPS: m[2] != "", Region: m[3]}, true
}

// ECRKeychainOptions configure an ECRKeychain. Zero values take defaults.
type ECRKeychainOptions struct {
	// NewClient builds the ECR client for a region. Default: ecr.NewFromConfig
	// over Config in that region (FIPS endpoint for FIPS hosts).
	NewClient func(region string, fips bool) ECR
	// RefreshBefore is how long before ExpiresAt a token is renewed
	// (default 15 min; ECR tokens live 12 h).
	RefreshBefore time.Duration
	// FetchTimeout bounds one GetAuthorizationToken call, which is shared by
	// every request waiting for it (default 10 s).
	FetchTimeout time.Duration
	// Now is the clock; tests replace it.
	Now func() time.Time
}

// ECRKeychain is an authn.Keychain for private ECR registries. It returns
// Anonymous for any other host, so it composes with other keychains.
//
// An authorization token belongs to the caller's IAM principal and a region
// (it opens every registry in that region the principal may read), so tokens
// are cached per region and FIPS-ness until RefreshBefore their expiry.
// Concurrent misses share one GetAuthorizationToken call. When a renewal
// fails while the cached token has not yet expired, the cached token is
// used: an ECR API hiccup must not fail admissions.
type ECRKeychain struct {
	opts  ECRKeychainOptions
	group singleflight.Group

	// clients are the default NewClient's, at most maxECRRegions.
	clients *expiring.Map[string, ECR]

	mu     sync.Mutex
	tokens map[string]ecrToken // at most maxECRRegions
}

type ecrToken struct {
	auth    authn.AuthConfig
	expires time.Time
}

var (
	_ authn.Keychain        = (*ECRKeychain)(nil)
	_ authn.ContextKeychain = (*ECRKeychain)(nil)
)

// NewECRKeychain builds the keychain over cfg (the shared configuration).
func NewECRKeychain(cfg aws.Config, opts ECRKeychainOptions) *ECRKeychain {
	k := &ECRKeychain{tokens: map[string]ecrToken{}}
	if opts.NewClient == nil {
		// Clients are cheap to rebuild and live long: the bound, not the
		// lifetime, is what matters.
		k.clients = expiring.New[string, ECR](24*time.Hour, maxECRRegions, opts.Now)
		opts.NewClient = func(region string, fips bool) ECR {
			return k.clients.Update(fmt.Sprintf("%s/%t", region, fips), func(cur ECR, live bool) (ECR, bool) {
				if live {
					return cur, false
				}
				return ecr.NewFromConfig(ForRegion(cfg, region), func(o *ecr.Options) {
					if fips {
						o.EndpointOptions.UseFIPSEndpoint = aws.FIPSEndpointStateEnabled
					}
				}), true
			})
		}
	}
	if opts.RefreshBefore <= 0 {
		opts.RefreshBefore = 15 * time.Minute
	}
	if opts.FetchTimeout <= 0 {
		opts.FetchTimeout = 10 * time.Second
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	k.opts = opts
	return k
}

// Resolve implements authn.Keychain.
func (k *ECRKeychain) Resolve(r authn.Resource) (authn.Authenticator, error) {
	return k.ResolveContext(context.Background(), r)
}

// ResolveContext implements authn.ContextKeychain: go-containerregistry
// passes the request's context, which bounds the wait for a token.
func (k *ECRKeychain) ResolveContext(ctx context.Context, r authn.Resource) (authn.Authenticator, error) {
	reg, ok := ParseECRHost(r.RegistryStr())
	if !ok {
		return authn.Anonymous, nil
	}
	key := fmt.Sprintf("%s/%t", reg.Region, reg.FIPS)
	now := k.opts.Now()
	k.mu.Lock()
	tok, cached := k.tokens[key]
	k.mu.Unlock()
	if cached && now.Before(tok.expires.Add(-k.opts.RefreshBefore)) {
		return authn.FromConfig(tok.auth), nil
	}

	ch := k.group.DoChan(key, func() (any, error) { return k.fetch(ctx, key, reg) })
	select {
	case res := <-ch:
		if res.Err != nil {
			if cached && now.Before(tok.expires) {
				return authn.FromConfig(tok.auth), nil
			}
			return nil, res.Err
		}
		return authn.FromConfig(res.Val.(ecrToken).auth), nil
	case <-ctx.Done():
		return nil, fmt.Errorf("waiting for an ECR authorization token for %s: %w", r.RegistryStr(), ctx.Err())
	}
}

// fetch calls GetAuthorizationToken once for every waiter. It runs on the
// first caller's values but not its cancellation: a caller giving up must
// not fail the others sharing the call.
func (k *ECRKeychain) fetch(ctx context.Context, key string, reg ECRRegistry) (ecrToken, error) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), k.opts.FetchTimeout)
	defer cancel()
	out, err := k.opts.NewClient(reg.Region, reg.FIPS).GetAuthorizationToken(ctx, &ecr.GetAuthorizationTokenInput{})
	if err != nil {
		return ecrToken{}, fmt.Errorf("getting an ECR authorization token in %s: %w", reg.Region, err)
	}
	if len(out.AuthorizationData) == 0 || out.AuthorizationData[0].AuthorizationToken == nil {
		return ecrToken{}, fmt.Errorf("getting an ECR authorization token in %s: the response holds no token", reg.Region)
	}
	data := out.AuthorizationData[0]
	auth, err := decodeECRToken(aws.ToString(data.AuthorizationToken))
	if err != nil {
		return ecrToken{}, fmt.Errorf("getting an ECR authorization token in %s: %w", reg.Region, err)
	}
	tok := ecrToken{auth: auth, expires: k.opts.Now().Add(12 * time.Hour)}
	if data.ExpiresAt != nil {
		tok.expires = *data.ExpiresAt
	}
	k.mu.Lock()
	if _, ok := k.tokens[key]; !ok && len(k.tokens) >= maxECRRegions {
		for old := range k.tokens { // drop one; it is fetched again when needed
			delete(k.tokens, old)
			break
		}
	}
	k.tokens[key] = tok
	k.mu.Unlock()
	return tok, nil
}

// decodeECRToken splits base64("AWS:<password>") into docker credentials.
func decodeECRToken(token string) (authn.AuthConfig, error) {
	raw, err := base64.StdEncoding.DecodeString(token)
	if err != nil {
		return authn.AuthConfig{}, fmt.Errorf("malformed token: %w", err)
	}
	user, pass, ok := strings.Cut(string(raw), ":")
	if !ok || user == "" || pass == "" {
		return authn.AuthConfig{}, errors.New("malformed token: want user:password")
	}
	return authn.AuthConfig{Username: user, Password: pass}, nil
}
