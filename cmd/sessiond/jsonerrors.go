package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"strconv"
	"strings"

	sdclient "github.com/sessiond/sessiond/client"
)

// net/http answers a request it cannot parse (headers over MaxHeaderBytes,
// a malformed request line or header, an unknown Transfer-Encoding) itself,
// before any handler runs, with a text/plain body written straight to the
// connection. jsonErrorListener rewrites exactly those answers into the
// API's JSON error envelope, so a client sees one error format whatever
// went wrong. It recognises them by the fixed header block net/http writes
// for them and nothing else: "Content-Type: text/plain; charset=utf-8"
// directly followed by "Connection: close", an order net/http's sorted
// handler headers never produce. Over TLS the connection must stay a
// *tls.Conn for net/http, so these few answers stay plain text there.
type jsonErrorListener struct{ net.Listener }

func (l jsonErrorListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &jsonErrorConn{Conn: c}, nil
}

type jsonErrorConn struct{ net.Conn }

const netHTTPErrorHeaders = "\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\n\r\n"

func (c *jsonErrorConn) Write(b []byte) (int, error) {
	if !bytes.HasPrefix(b, []byte("HTTP/1.1 ")) || !bytes.Contains(b, []byte(netHTTPErrorHeaders)) {
		return c.Conn.Write(b)
	}
	if _, err := c.Conn.Write(jsonErrorResponse(b)); err != nil {
		return 0, err
	}
	return len(b), nil
}

// jsonErrorResponse turns net/http's "HTTP/1.1 CODE TEXT<headers>BODY" into
// the same status with a JSON body.
func jsonErrorResponse(plain []byte) []byte {
	statusLine, body, _ := strings.Cut(string(plain), netHTTPErrorHeaders)
	statusLine = strings.TrimPrefix(statusLine, "HTTP/1.1 ")
	codeText, reason, _ := strings.Cut(statusLine, " ")
	status, err := strconv.Atoi(codeText)
	if err != nil {
		status = 400
	}
	reason, _, _ = strings.Cut(reason, ":") // "Bad Request: missing required Host header"
	code := "malformed_request"
	switch status {
	case 431:
		code = "headers_too_large"
	case 501:
		code = "unsupported_transfer_encoding"
	}
	var e sdclient.ErrorBody
	e.Error.Code, e.Error.Message = code, body
	js, _ := json.Marshal(e)
	js = append(js, '\n')
	return fmt.Appendf(nil, "HTTP/1.1 %d %s\r\nContent-Type: application/json\r\nConnection: close\r\nContent-Length: %d\r\n\r\n%s",
		status, reason, len(js), js)
}

// CloseWrite keeps net/http's half-close after a 431 working.
func (c *jsonErrorConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}
