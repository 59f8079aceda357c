// Command pause is the local node's sandbox ("pause") container and the
// runnable test image: a static binary that waits for SIGTERM or SIGINT and
// exits 0. Nothing can be pulled from outside this machine, so the stack
// builds it (test/podimage) and pushes it to its own registry.
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM, syscall.SIGINT)
	<-stop
}
