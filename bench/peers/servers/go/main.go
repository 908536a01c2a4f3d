// The http_hello server of bench/WORKLOADS.md in Go: net/http, as a Go programmer writes
// it. The same behaviour and command line as examples/http_server.c: GET / answers
// "Hello, World!", GET /sleep?ms=N sleeps N ms first, anything else is 404; keep-alive
// (net/http's default); "listening on HOST:PORT" on stdout once ready; SIGINT or SIGTERM
// shuts down gracefully (http.Server.Shutdown) and exits 0.
//
//	server-go [--host H] [--port N] [--workers N]
//
// --workers sets GOMAXPROCS (0: Go's default, one per CPU). Go raises its own soft
// RLIMIT_NOFILE to the hard limit at start-up (since Go 1.19).
package main

import (
	"context"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"runtime"
	"strconv"
	"syscall"
	"time"
)

func main() {
	host := flag.String("host", "127.0.0.1", "address to listen on")
	port := flag.Int("port", 8080, "port (0: an ephemeral port, printed)")
	workers := flag.Int("workers", 0, "GOMAXPROCS (0: one per CPU)")
	flag.Parse()
	if *workers > 0 {
		runtime.GOMAXPROCS(*workers)
	}

	hello := []byte("Hello, World!")
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.Method == "GET" && r.URL.Path == "/":
		case r.Method == "GET" && r.URL.Path == "/sleep":
			ms, err := strconv.Atoi(r.URL.Query().Get("ms"))
			if err != nil || ms < 0 || ms > 60000 {
				http.NotFound(w, r)
				return
			}
			time.Sleep(time.Duration(ms) * time.Millisecond)
		default:
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "text/plain")
		w.Write(hello)
	})

	ln, err := net.Listen("tcp", net.JoinHostPort(*host, strconv.Itoa(*port)))
	if err != nil {
		fmt.Fprintln(os.Stderr, "server-go:", err)
		os.Exit(1)
	}
	fmt.Printf("listening on %s\n", ln.Addr().String())
	os.Stdout.Sync()

	srv := &http.Server{Handler: handler}
	done := make(chan struct{})
	go func() {
		signals := make(chan os.Signal, 1)
		signal.Notify(signals, syscall.SIGINT, syscall.SIGTERM)
		<-signals
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
		close(done)
	}()
	if err := srv.Serve(ln); err != http.ErrServerClosed {
		fmt.Fprintln(os.Stderr, "server-go:", err)
		os.Exit(1)
	}
	<-done
}
