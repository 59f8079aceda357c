package awsclient

import (
	"sync"

	"github.com/aws/aws-sdk-go-v2/aws"
)

// regional builds one client per region from the shared aws.Config, once:
// keys and signing profiles named by ARN are served in their own region
// (and so partition), everything else in the configuration's region.
type regional[T any] struct {
	cfg   aws.Config
	build func(aws.Config) T

	mu      sync.Mutex
	clients map[string]T
}

func newRegional[T any](cfg aws.Config, build func(aws.Config) T) regional[T] {
	return regional[T]{cfg: cfg, build: build, clients: map[string]T{}}
}

// forRegion returns the client for region; "" means the configuration's own.
func (r *regional[T]) forRegion(region string) T {
	r.mu.Lock()
	defer r.mu.Unlock()
	if c, ok := r.clients[region]; ok {
		return c
	}
	c := r.build(ForRegion(r.cfg, region))
	r.clients[region] = c
	return c
}
