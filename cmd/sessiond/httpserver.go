package main

import (
	"log/slog"
	"net/http"
	"time"
)

// Limits of the client-facing HTTP server. They apply to HTTP/1.1 and to
// HTTP/2 alike: net/http's HTTP/2 server takes IdleTimeout per connection,
// ReadTimeout and WriteTimeout per stream (request), and derives the
// SETTINGS_MAX_HEADER_LIST_SIZE it advertises from MaxHeaderBytes.
const (
	httpReadHeaderTimeout = 10 * time.Second
	httpReadTimeout       = 30 * time.Second
	httpWriteTimeout      = 30 * time.Second
	httpIdleTimeout       = 2 * time.Minute
	httpMaxHeaderBytes    = 64 << 10

	// h2MaxConcurrentStreams bounds the requests one HTTP/2 connection
	// carries at once. It also bounds the handler goroutines a connection
	// can start (net/http queues at most 4× as many more, then closes the
	// connection), so one client cannot take more of the node than
	// --max-inflight lets it shed. 250 is net/http's own default, set
	// here so that the bound does not change with the Go release.
	h2MaxConcurrentStreams = 250
)

// newHTTPServer builds the server for the client port. With h2c it accepts
// HTTP/2 over cleartext TCP from clients that speak it with prior knowledge
// (the connection starts with the HTTP/2 preface) next to HTTP/1.1 on the
// same port: many requests then share one connection instead of needing a
// connection each. An HTTP/1.1 client pays nothing for it beyond net/http
// peeking at the first bytes of each new connection, which it reads
// anyway. The HTTP/1.1 "Upgrade: h2c" dance is not offered; net/http does
// not implement it.
func newHTTPServer(handler http.Handler, h2c bool, logger *slog.Logger) *http.Server {
	protocols := new(http.Protocols)
	protocols.SetHTTP1(true)
	protocols.SetHTTP2(true) // over TLS, negotiated with ALPN
	protocols.SetUnencryptedHTTP2(h2c)
	return &http.Server{
		Handler:           handler,
		ReadHeaderTimeout: httpReadHeaderTimeout, // also bounds the wait for the HTTP/2 preface
		ReadTimeout:       httpReadTimeout,
		WriteTimeout:      httpWriteTimeout,
		IdleTimeout:       httpIdleTimeout,
		MaxHeaderBytes:    httpMaxHeaderBytes,
		Protocols:         protocols,
		HTTP2:             &http.HTTP2Config{MaxConcurrentStreams: h2MaxConcurrentStreams},
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
}
