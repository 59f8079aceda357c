package main

import (
	"fmt"
	"os"

	"k8s.io/apimachinery/pkg/util/uuid"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"

	"github.com/signet-dev/signet/pkg/audit"
	"github.com/signet-dev/signet/pkg/policy"
)

// addAudit adds continuous validation (--audit-interval) to mgr: the same
// engine and verdict cache as admission, on the one replica holding the
// --audit-lease Lease.
func addAudit(mgr ctrl.Manager, cfg *rest.Config, opts *Options, engine *policy.Engine, policies func() []*policy.Policy, registryRequests func() uint64) error {
	if opts.AuditInterval == 0 {
		return nil
	}
	m, err := audit.NewMetrics(ctrlmetrics.Registry)
	if err != nil {
		return err
	}
	c := &audit.Controller{
		Auditor: &audit.Auditor{
			Engine:           engine,
			Policies:         policies,
			Reader:           mgr.GetAPIReader(),
			Exempt:           toSet(opts.ExemptNamespaces),
			SkipExempt:       !opts.AuditExempt,
			RegistryRequests: registryRequests,
		},
		Interval: opts.AuditInterval,
		Events:   mgr.GetEventRecorder("signet-audit"),
		Status:   mgr.GetClient(),
		Metrics:  m,
	}
	dc, err := discovery.NewDiscoveryClientForConfig(cfg)
	if err != nil {
		return err
	}
	c.Reports = &audit.Reports{Client: mgr.GetClient(), Reader: mgr.GetAPIReader(), Discovery: dc}
	if opts.AuditLease != "" {
		cs, err := kubernetes.NewForConfig(cfg)
		if err != nil {
			return err
		}
		host, _ := os.Hostname()
		c.Lease = &audit.Lease{Client: cs, Namespace: opts.Namespace, Name: opts.AuditLease, Identity: fmt.Sprintf("%s_%s", host, uuid.NewUUID())}
	}
	return mgr.Add(c)
}
