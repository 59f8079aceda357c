package awsclient

import (
	"context"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"
)

// KMS is the part of the KMS API Signet uses: reading public keys. The
// method has the SDK's exact signature, so *kms.Client satisfies it and so
// can a stub. Signet never signs, and never calls KMS per verification.
type KMS interface {
	GetPublicKey(ctx context.Context, params *kms.GetPublicKeyInput, optFns ...func(*kms.Options)) (*kms.GetPublicKeyOutput, error)
}

var _ KMS = (*kms.Client)(nil)

// KMSClients hands out one KMS client per region, built once from the
// shared aws.Config. Keys named by ARN are read in the ARN's region (and so
// its partition); other keys in the configuration's region.
type KMSClients struct{ regional[KMS] }

// NewKMSClients builds the per-region client set over cfg.
func NewKMSClients(cfg aws.Config) *KMSClients {
	return &KMSClients{newRegional(cfg, func(c aws.Config) KMS { return kms.NewFromConfig(c) })}
}

// ForRegion returns the client for region; "" means the configuration's
// own region.
func (c *KMSClients) ForRegion(region string) KMS { return c.forRegion(region) }

// Region is the configuration's own region ("" when none is configured).
func (c *KMSClients) Region() string { return c.cfg.Region }
