package main

import (
	"errors"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"time"
)

// pprofHandler serves the net/http/pprof endpoints under /debug/pprof/. It
// is a mux of its own rather than http.DefaultServeMux (where importing
// net/http/pprof also registers them), so the profiling listener exposes
// these routes and nothing any other package registered there.
func pprofHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	return mux
}

// servePprof serves pprofHandler on ln, apart from the API's listener, until
// the returned server is closed. A failure of the profiling server is
// logged and does not stop the node.
func servePprof(ln net.Listener, logger *slog.Logger) *http.Server {
	srv := &http.Server{
		Handler:           pprofHandler(),
		ReadHeaderTimeout: 10 * time.Second,
		// No WriteTimeout: CPU profiles and traces stream for ?seconds=N
		// (30 by default), and pprof refuses a duration longer than the
		// server's WriteTimeout.
		IdleTimeout: 2 * time.Minute,
		ErrorLog:    slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			logger.Warn("pprof server stopped", "err", err)
		}
	}()
	return srv
}
