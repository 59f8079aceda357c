package awssigner

import (
	"context"
	"crypto/sha512"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/service/signer"
	"github.com/aws/smithy-go"
	"golang.org/x/sync/singleflight"

	"github.com/signet-dev/signet/internal/awsclient"
	"github.com/signet-dev/signet/internal/expiring"
)

// platformNotation is the AWS Signer platform of container-image signatures.
const platformNotation = "Notation-OCI-SHA384-ECDSA"

// RevocationMode is what a revocation check decides.
type RevocationMode string

// Revocation modes; the values of the ClusterImagePolicy API.
const (
	// RevocationEnforce denies revoked signatures and denies when AWS Signer
	// cannot be asked.
	RevocationEnforce RevocationMode = "Enforce"
	// RevocationBestEffort denies revoked signatures and admits, with a
	// warning, when AWS Signer cannot be asked.
	RevocationBestEffort RevocationMode = "BestEffort"
	// RevocationSkip never asks AWS Signer.
	RevocationSkip RevocationMode = "Skip"
)

// RevocationOptions configure a RevocationChecker. Zero values take the defaults.
type RevocationOptions struct {
	// Clients returns the Signer client of a region
	// (awsclient.SignerClients.ForRegion). Required.
	Clients func(region string) awsclient.Signer
	// TTL keeps an answer from AWS Signer (default 10 min).
	TTL time.Duration
	// Timeout bounds one GetRevocationStatus call, retries included
	// (default 3 s), so that an unreachable Signer becomes a clear "could
	// not check revocation" well inside the admission budget.
	Timeout time.Duration
	// MaxEntries bounds the cache (default 10,000).
	MaxEntries int
	// Now is the clock; tests replace it.
	Now func() time.Time
}

// RevocationChecker asks AWS Signer whether signatures were revoked, once
// per signature per TTL: answers are cached by profile version, signing
// job and certificate hashes, and concurrent identical questions are asked
// once. One checker serves every AWS Signer verifier of the process.
type RevocationChecker struct {
	opts  RevocationOptions
	group singleflight.Group

	answers *expiring.Map[string, []string] // revoked entities by query

	lookups, hits, calls, unavailable, bestEffortAdmitted atomic.Uint64
}

// RevocationStats count what the checker did since it was made.
type RevocationStats struct {
	// Lookups: revocation checks asked for.
	Lookups uint64
	// CacheHits: checks answered from the cache.
	CacheHits uint64
	// SignerCalls: GetRevocationStatus calls made (SDK retries not counted).
	SignerCalls uint64
	// Unavailable: calls that got no answer (error or timeout).
	Unavailable uint64
	// BestEffortAdmitted: images admitted in BestEffort mode although
	// revocation could not be checked. The metrics layer exports it.
	BestEffortAdmitted uint64
}

// NewRevocationChecker builds a checker.
func NewRevocationChecker(opts RevocationOptions) (*RevocationChecker, error) {
	if opts.Clients == nil {
		return nil, errors.New("awssigner: RevocationOptions.Clients is required")
	}
	if opts.TTL <= 0 {
		opts.TTL = 10 * time.Minute
	}
	if opts.Timeout <= 0 {
		opts.Timeout = 3 * time.Second
	}
	if opts.MaxEntries <= 0 {
		opts.MaxEntries = 10000
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &RevocationChecker{opts: opts, answers: expiring.New[string, []string](opts.TTL, opts.MaxEntries, opts.Now)}, nil
}

// Stats returns the counters.
func (c *RevocationChecker) Stats() RevocationStats {
	return RevocationStats{
		Lookups:            c.lookups.Load(),
		CacheHits:          c.hits.Load(),
		SignerCalls:        c.calls.Load(),
		Unavailable:        c.unavailable.Load(),
		BestEffortAdmitted: c.bestEffortAdmitted.Load(),
	}
}

// revocationQuery is one GetRevocationStatus question.
type revocationQuery struct {
	region            string
	profileVersionARN string
	jobARN            string
	signingTime       time.Time
	certificateHashes []string
}

func (q revocationQuery) key() string {
	return q.profileVersionARN + "\n" + q.jobARN + "\n" + strings.Join(q.certificateHashes, ",")
}

// unavailableError says AWS Signer gave no answer.
type unavailableError struct {
	region string
	err    error
}

func (e *unavailableError) Error() string {
	return fmt.Sprintf("could not check revocation with AWS Signer in %s: %s", e.region, describeAWSError(e.err))
}

func (e *unavailableError) Unwrap() error { return e.err }

// answer is AWS Signer's revocation status for one query, and until when
// Signet relies on it.
type answer struct {
	revoked []string
	until   time.Time
}

// revoked returns the entities of q that AWS Signer reports revoked (none:
// not revoked) and when that answer expires, or an *unavailableError.
func (c *RevocationChecker) revoked(ctx context.Context, q revocationQuery) (answer, error) {
	c.lookups.Add(1)
	key := q.key()
	if r, until, ok := c.answers.GetExpiring(key); ok {
		c.hits.Add(1)
		return answer{r, until}, nil
	}
	called := false // set by the one caller that asks Signer
	ch := c.group.DoChan(key, func() (any, error) {
		if r, until, ok := c.answers.GetExpiring(key); ok {
			return answer{r, until}, nil
		}
		called = true
		// The call outlives a caller that gives up, so that its retry
		// finds the answer cached; the timeout bounds it.
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), c.opts.Timeout)
		defer cancel()
		c.calls.Add(1)
		out, err := c.opts.Clients(q.region).GetRevocationStatus(cctx, &signer.GetRevocationStatusInput{
			ProfileVersionArn:  aws.String(q.profileVersionARN),
			JobArn:             aws.String(q.jobARN),
			PlatformId:         aws.String(platformNotation),
			SignatureTimestamp: aws.Time(q.signingTime),
			CertificateHashes:  q.certificateHashes,
		})
		if err != nil {
			c.unavailable.Add(1)
			return nil, &unavailableError{region: q.region, err: err}
		}
		r := append([]string{}, out.RevokedEntities...)
		return answer{r, c.answers.Put(key, r)}, nil
	})
	select {
	case res := <-ch:
		if res.Err != nil {
			return answer{}, res.Err
		}
		if !called {
			c.hits.Add(1) // answered by another caller's call, or the cache
		}
		return res.Val.(answer), nil
	case <-ctx.Done():
		return answer{}, &unavailableError{region: q.region, err: ctx.Err()}
	}
}

// certificateHashes are AWS Signer's certificate identifiers for a chain
// (leaf first): for each certificate, hex(SHA-384(its TBS)) followed by
// hex(SHA-384(its issuer's TBS)); the root is its own issuer.
func certificateHashes(chain []*x509.Certificate) []string {
	tbs := make([]string, len(chain))
	for i, c := range chain {
		sum := sha512.Sum384(c.RawTBSCertificate)
		tbs[i] = hex.EncodeToString(sum[:])
	}
	out := make([]string, len(chain))
	for i := range tbs {
		parent := min(i+1, len(tbs)-1)
		out[i] = tbs[i] + tbs[parent]
	}
	return out
}

// describeAWSError words an AWS SDK failure in a few words: the HTTP status
// and error code, that the answer was not AWS Signer's (a proxy's or
// captive portal's page), that the call timed out, or that Signer could not
// be reached at all (the SDK then reports a response error with no status,
// which would read as "HTTP 0").
func describeAWSError(err error) string {
	var ne net.Error
	timedOut := errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout())
	var dns *net.DNSError
	var op *net.OpError
	var re *awshttp.ResponseError
	var ae smithy.APIError
	var de *smithy.DeserializationError
	switch {
	case timedOut:
		return "no answer in time"
	case errors.Is(err, context.Canceled):
		return "canceled"
	case errors.As(err, &dns):
		return fmt.Sprintf("cannot resolve %s: %s", dns.Name, dns.Err)
	case errors.As(err, &op) && op.Op == "dial":
		return fmt.Sprintf("cannot connect to %s: %v", op.Addr, op.Err)
	case errors.As(err, &re) && errors.As(err, &de):
		return fmt.Sprintf("HTTP %d that is not an AWS Signer answer", re.HTTPStatusCode())
	case errors.As(err, &re) && errors.As(err, &ae):
		return fmt.Sprintf("HTTP %d %s", re.HTTPStatusCode(), ae.ErrorCode())
	case errors.As(err, &re):
		return fmt.Sprintf("HTTP %d", re.HTTPStatusCode())
	case errors.As(err, &ae):
		return ae.ErrorCode()
	}
	return err.Error()
}
