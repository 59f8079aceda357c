package awsclient

import (
	"context"
	"errors"
	"time"

	awsmiddleware "github.com/aws/aws-sdk-go-v2/aws/middleware"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/smithy-go"
	"github.com/aws/smithy-go/middleware"
)

// Call is one AWS API call as an observer sees it: one client method call,
// SDK retries included.
type Call struct {
	// Service is the SDK's service ID ("KMS", "ECR", "signer").
	Service string
	// Operation is the API operation ("GetPublicKey").
	Operation string
	// Result is "success"; the AWS error code when AWS answered with an
	// error ("AccessDeniedException", "NotFoundException"); or "error" when
	// no answer came (network failure, timeout, cancellation).
	Result string
	// Duration is the whole call, retries and backoff included.
	Duration time.Duration
}

// ResultSuccess and ResultError are the Call results that are not AWS error codes.
const (
	ResultSuccess = "success"
	ResultError   = "error"
)

// WithObserver is a LoadConfig option: every API call of every client built
// from the configuration (KMS, ECR, Signer) is reported to observe when it
// ends; nil observes nothing. observe must be fast and safe for concurrent use.
func WithObserver(observe func(Call)) func(*config.LoadOptions) error {
	if observe == nil {
		return func(*config.LoadOptions) error { return nil }
	}
	return config.WithAPIOptions([]func(*middleware.Stack) error{func(stack *middleware.Stack) error {
		// After the operation's own initialize steps, which put the service
		// and operation names into the context.
		return stack.Initialize.Add(middleware.InitializeMiddlewareFunc("SignetObserve",
			func(ctx context.Context, in middleware.InitializeInput, next middleware.InitializeHandler) (middleware.InitializeOutput, middleware.Metadata, error) {
				begin := time.Now()
				out, md, err := next.HandleInitialize(ctx, in)
				observe(Call{
					Service:   awsmiddleware.GetServiceID(ctx),
					Operation: awsmiddleware.GetOperationName(ctx),
					Result:    result(err),
					Duration:  time.Since(begin),
				})
				return out, md, err
			}), middleware.After)
	}})
}

// result names an outcome with a bounded set of values: AWS error codes
// come from the service models.
func result(err error) string {
	var apiErr smithy.APIError
	switch {
	case err == nil:
		return ResultSuccess
	case errors.As(err, &apiErr) && apiErr.ErrorCode() != "":
		return apiErr.ErrorCode()
	}
	return ResultError
}
