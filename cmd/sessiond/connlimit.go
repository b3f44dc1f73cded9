package main

import (
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// connLimitListener bounds the client connections a node holds open: in
// all, and from any one IP address, so that one client (or 300 half-open
// connections from one attacker) cannot take every file descriptor and
// goroutine. A connection beyond a bound is answered at once and closed:
// on plain HTTP with a 503 overloaded in the API's JSON envelope, over TLS
// (which has not even been negotiated yet) by the close alone. Loopback
// clients are exempt from the per-address bound: on one machine every
// client shares 127.0.0.1, and they are the machine's own. Safe for
// concurrent use.
type connLimitListener struct {
	net.Listener
	max, perIP int
	plain      bool // answer refused connections with an HTTP response
	logger     *slog.Logger

	mu    sync.Mutex
	total int
	byIP  map[string]int

	refused    atomic.Uint64
	lastLogged atomic.Int64 // unix nanos of the last refusal logged
}

func newConnLimitListener(ln net.Listener, max, perIP int, plain bool, logger *slog.Logger) *connLimitListener {
	return &connLimitListener{Listener: ln, max: max, perIP: perIP, plain: plain, logger: logger, byIP: map[string]int{}}
}

func (l *connLimitListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		ip := remoteIP(c)
		if why := l.admit(ip); why != "" {
			l.refuse(c, ip, why)
			continue
		}
		return &limitedConn{Conn: c, release: func() { l.release(ip) }}, nil
	}
}

// admit counts a new connection from ip, or says why it is refused.
func (l *connLimitListener) admit(ip string) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.total >= l.max {
		return fmt.Sprintf("the node holds %d connections, its --max-conns", l.max)
	}
	if !isLoopback(ip) && l.byIP[ip] >= l.perIP {
		return fmt.Sprintf("%s holds %d connections, the --max-conns-per-ip", ip, l.perIP)
	}
	l.total++
	l.byIP[ip]++
	return ""
}

func (l *connLimitListener) release(ip string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.total--
	if l.byIP[ip]--; l.byIP[ip] <= 0 {
		delete(l.byIP, ip)
	}
}

func (l *connLimitListener) refuse(c net.Conn, ip, why string) {
	l.refused.Add(1)
	if now := time.Now().UnixNano(); now-l.lastLogged.Load() > int64(10*time.Second) {
		l.lastLogged.Store(now)
		l.logger.Warn("refusing client connections (further refusals within 10s are not logged)", "remote", ip, "reason", why)
	}
	if l.plain {
		body := fmt.Sprintf(`{"error":{"code":"overloaded","message":%q}}`+"\n", "connection refused: "+why)
		_ = c.SetWriteDeadline(time.Now().Add(time.Second))
		_, _ = fmt.Fprintf(c, "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nRetry-After: 1\r\nConnection: close\r\nContent-Length: %d\r\n\r\n%s", len(body), body)
	}
	c.Close()
}

func remoteIP(c net.Conn) string {
	host, _, err := net.SplitHostPort(c.RemoteAddr().String())
	if err != nil {
		return c.RemoteAddr().String()
	}
	return host
}

// limitedConn gives its slot back once, however often it is closed.
type limitedConn struct {
	net.Conn
	once    sync.Once
	release func()
}

func (c *limitedConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.release)
	return err
}

// CloseWrite keeps net/http's half-close working through the wrapper.
func (c *limitedConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}
