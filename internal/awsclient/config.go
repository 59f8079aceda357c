// Package awsclient is Signet's one place for AWS plumbing: the aws.Config
// built from the SDK's default chain, the narrow client interfaces the
// verifiers consume, and the ECR credential cache. Verifiers use it;
// admission code never talks to AWS directly.
//
// Credentials and endpoints come only from the SDK's default chain: IRSA
// (web identity), EKS Pod Identity (container credentials), environment,
// shared config, and AWS_ENDPOINT_URL_<SERVICE>. Signet has no AWS flags of
// its own, so what works for the AWS CLI in the same Pod works for Signet.
package awsclient

import (
	"context"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/config"
)

// MaxAttempts bounds retries so that an AWS outage surfaces as a clear
// error well inside the admission budget instead of as an API-server
// timeout. Callers' contexts bound the total time as well.
const MaxAttempts = 2

// LoadConfig loads the default chain once. The region may be empty (no
// AWS_REGION and no shared config): clients for ARNs that carry a region
// get it with ForRegion.
func LoadConfig(ctx context.Context, optFns ...func(*config.LoadOptions) error) (aws.Config, error) {
	opts := append([]func(*config.LoadOptions) error{
		config.WithRetryer(func() aws.Retryer {
			return retry.NewStandard(func(o *retry.StandardOptions) {
				o.MaxAttempts = MaxAttempts
				o.MaxBackoff = 500 * time.Millisecond
			})
		}),
	}, optFns...)
	cfg, err := config.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return aws.Config{}, fmt.Errorf("loading AWS configuration: %w", err)
	}
	return cfg, nil
}

// ForRegion returns cfg for region; an empty region keeps cfg's own.
// The partition (aws, aws-us-gov, aws-cn) follows from the region when the
// SDK resolves the endpoint.
func ForRegion(cfg aws.Config, region string) aws.Config {
	c := cfg.Copy()
	if region != "" {
		c.Region = region
	}
	return c
}
