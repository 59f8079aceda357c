package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// criClient talks to containerd's CRI plugin, as kubelet does.
func criClient(sock string) (runtimeapi.RuntimeServiceClient, func(), error) {
	conn, err := grpc.NewClient("unix://"+sock, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return nil, nil, err
	}
	return runtimeapi.NewRuntimeServiceClient(conn), func() { _ = conn.Close() }, nil
}

// waitCRI waits until containerd answers on sock and says its runtime is
// ready; alive lets it give up at once when containerd has exited.
func waitCRI(ctx context.Context, sock string, timeout time.Duration, alive func() bool) error {
	rt, closeConn, err := criClient(sock)
	if err != nil {
		return err
	}
	defer closeConn()
	deadline := time.Now().Add(timeout)
	var last error
	for time.Now().Before(deadline) {
		cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		st, err := rt.Status(cctx, &runtimeapi.StatusRequest{})
		cancel()
		if err == nil {
			last = errors.New("RuntimeReady is not true")
			for _, c := range st.GetStatus().GetConditions() {
				if c.Type == runtimeapi.RuntimeReady && c.Status {
					return nil
				}
			}
		} else {
			last = err
		}
		if !alive() {
			return fmt.Errorf("the process exited (%w)", last)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
	return fmt.Errorf("gave up after %s: %w", timeout, last)
}

// removeSandboxes stops and removes every Pod sandbox, as kubelet would on
// deleting the Pods: containerd kills the containers, CNI releases the
// addresses and removes the veths and its nat rules, the network
// namespaces and mounts go.
func removeSandboxes(ctx context.Context, sock string) (int, error) {
	rt, closeConn, err := criClient(sock)
	if err != nil {
		return 0, err
	}
	defer closeConn()
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	list, err := rt.ListPodSandbox(ctx, &runtimeapi.ListPodSandboxRequest{})
	if err != nil {
		return 0, fmt.Errorf("listing Pod sandboxes: %w", err)
	}
	var errs []error
	for _, sb := range list.Items {
		if _, err := rt.StopPodSandbox(ctx, &runtimeapi.StopPodSandboxRequest{PodSandboxId: sb.Id}); err != nil {
			errs = append(errs, fmt.Errorf("stopping sandbox of %s/%s: %w", sb.GetMetadata().GetNamespace(), sb.GetMetadata().GetName(), err))
			continue
		}
		if _, err := rt.RemovePodSandbox(ctx, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: sb.Id}); err != nil {
			errs = append(errs, fmt.Errorf("removing sandbox of %s/%s: %w", sb.GetMetadata().GetNamespace(), sb.GetMetadata().GetName(), err))
		}
	}
	return len(list.Items), errors.Join(errs...)
}
