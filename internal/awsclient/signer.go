package awsclient

import (
	"context"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/signer"
	"github.com/aws/smithy-go/middleware"
	smithyhttp "github.com/aws/smithy-go/transport/http"
)

// Signer is the part of the AWS Signer API Signet uses: the revocation
// status of a signature. The method has the SDK's exact signature, so
// *signer.Client satisfies it and so can a stub.
type Signer interface {
	GetRevocationStatus(ctx context.Context, params *signer.GetRevocationStatusInput, optFns ...func(*signer.Options)) (*signer.GetRevocationStatusOutput, error)
}

var _ Signer = (*signer.Client)(nil)

// SignerClients hands out one Signer client per region, built once from the
// shared aws.Config. Revocation is checked in the region (and so the
// partition) of the signing profile that made the signature.
type SignerClients struct{ regional[Signer] }

// NewSignerClients builds the per-region client set over cfg.
func NewSignerClients(cfg aws.Config) *SignerClients {
	return &SignerClients{newRegional(cfg, func(c aws.Config) Signer { return NewSignerClient(c) })}
}

// ForRegion returns the client for region; "" means the configuration's
// own region.
func (c *SignerClients) ForRegion(region string) Signer { return c.forRegion(region) }

// NewSignerClient builds one Signer client from cfg.
//
// GetRevocationStatus is modelled with an endpoint host prefix ("data-" in
// this SDK version, "verification." in older ones): the SDK sends it to
// data-signer.REGION.amazonaws.com. With a custom endpoint
// (AWS_ENDPOINT_URL_SIGNER, a VPC endpoint, a test server on 127.0.0.1) the
// prefix would turn the configured host into one that does not exist, so
// the prefix is disabled exactly when an endpoint is configured, and kept
// for the SDK's own endpoint resolution.
func NewSignerClient(cfg aws.Config) *signer.Client {
	return signer.NewFromConfig(cfg, func(o *signer.Options) {
		if o.BaseEndpoint == nil {
			return
		}
		// Copy: o.APIOptions may share its backing array with cfg.APIOptions.
		o.APIOptions = append(append([]func(*middleware.Stack) error(nil), o.APIOptions...), disableEndpointHostPrefix)
	})
}

// disableEndpointHostPrefix marks every operation of the stack as one whose
// endpoint host must be used as configured.
func disableEndpointHostPrefix(stack *middleware.Stack) error {
	return stack.Initialize.Add(middleware.InitializeMiddlewareFunc("SignetDisableEndpointHostPrefix",
		func(ctx context.Context, in middleware.InitializeInput, next middleware.InitializeHandler) (middleware.InitializeOutput, middleware.Metadata, error) {
			return next.HandleInitialize(smithyhttp.DisableEndpointHostPrefix(ctx, true), in)
		}), middleware.Before)
}
