// Package serve runs one of the stack's test servers as a command:
// --listen picks the address (127.0.0.1:0 for a free port), --addr-file
// receives the URL once the socket is open (so a launcher never races for
// a port), and SIGTERM or SIGINT shuts it down gracefully.
package serve

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"
)

// Main parses the common flags from args (after fs's own) and serves h.
func Main(fs *flag.FlagSet, args []string, h func() http.Handler) error {
	listen := fs.String("listen", "127.0.0.1:0", "Address to listen on.")
	addrFile := fs.String("addr-file", "", "File to write the server's URL to once it listens.")
	if err := fs.Parse(args); err != nil {
		return err
	}
	l, err := net.Listen("tcp", *listen)
	if err != nil {
		return fmt.Errorf("listening on %s: %w (pick a free port or use 127.0.0.1:0)", *listen, err)
	}
	url := "http://" + l.Addr().String()
	srv := &http.Server{Handler: h(), ReadHeaderTimeout: 10 * time.Second}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(l) }()
	if *addrFile != "" {
		// Write then rename: a reader never sees a half-written URL.
		tmp := *addrFile + ".tmp"
		if err := os.WriteFile(tmp, []byte(url+"\n"), 0o644); err != nil {
			return err
		}
		if err := os.Rename(tmp, *addrFile); err != nil {
			return err
		}
	}
	fmt.Printf("listening on %s\n", url)
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdown); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
