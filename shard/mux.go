package shard

import (
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"
)

// Every raft connection between sessiond nodes opens with this preamble:
//
//	magic "SSD" | version (1) | cluster id (8 bytes) | shard id (4 bytes)
//
// all big-endian. The mux reads it under a deadline and hands the connection
// to that shard's stream layer; raft's own framing starts right after it.
// With TLS (Mux.UseTLS) the handshake comes first and the preamble travels
// inside the TLS session, so nothing a peer sends is read before it has
// proven itself with a certificate.
const (
	preambleLen     = 16
	preambleVersion = 1
)

var preambleMagic = [3]byte{'S', 'S', 'D'}

// decodePreamble parses what encodePreamble wrote; ok is false unless b is
// exactly a preamble of this version.
func decodePreamble(b []byte) (clusterID uint64, shardID uint32, ok bool) {
	if len(b) != preambleLen || [3]byte(b[:3]) != preambleMagic || b[3] != preambleVersion {
		return 0, 0, false
	}
	return binary.BigEndian.Uint64(b[4:12]), binary.BigEndian.Uint32(b[12:16]), true
}

func encodePreamble(clusterID uint64, shardID uint32) []byte {
	b := make([]byte, preambleLen)
	copy(b, preambleMagic[:])
	b[3] = preambleVersion
	binary.BigEndian.PutUint64(b[4:12], clusterID)
	binary.BigEndian.PutUint32(b[12:16], shardID)
	return b
}

// Mux serves every raft group of a node on one TCP listener. It never creates
// a replica: a connection for another cluster, or for a shard this node does
// not host, is closed and counted.
type Mux struct {
	ln        net.Listener
	advertise net.Addr
	clusterID atomic.Uint64
	timeout   time.Duration // for the TLS handshake and reading the preamble
	logger    *slog.Logger
	tlsServer *tls.Config  // nil: accepted connections are plain TCP
	tlsClient *tls.Config  // nil: dialed connections are plain TCP
	lastWarn  atomic.Int64 // unix nanos of the last logged handshake failure

	mu     sync.Mutex
	layers map[uint32]*StreamLayer
	closed bool

	rejected atomic.Uint64
}

// NewMux wraps ln. advertise is the address other nodes dial (it may differ
// from ln's when binding 0.0.0.0). Call Serve to start accepting.
func NewMux(ln net.Listener, advertise net.Addr, clusterID uint64, logger *slog.Logger) *Mux {
	m := &Mux{ln: ln, advertise: advertise, timeout: 5 * time.Second, logger: logger,
		layers: map[uint32]*StreamLayer{}}
	m.clusterID.Store(clusterID)
	return m
}

// MuxTLS holds the TLS configs of the raft port.
type MuxTLS struct {
	// Server is used for every accepted connection. It must require a
	// client certificate and verify it (certs.Store.PeerServer does): the
	// mux refuses a connection that presents none, but trusts the config to
	// have checked the one presented.
	Server *tls.Config
	// Client is used to dial other nodes. Without ServerName or
	// InsecureSkipVerify set, the host of the address dialed is the name
	// verified.
	Client *tls.Config
}

// UseTLS makes the mux run TLS under the preamble: server for accepted
// connections, client for dialed ones; nil keeps that side plain TCP, and a
// node with TLS on one side only cannot talk to a node with it on both. A
// connection whose handshake fails, or that presents no client
// certificate, is closed and counted in Rejected before any preamble byte
// is read. Call it before Serve and before any Dial; the configs must not
// be modified afterwards.
func (m *Mux) UseTLS(server, client *tls.Config) {
	m.tlsServer, m.tlsClient = server, client
}

// SetClusterID sets the id new connections must carry (a node learns it when
// it joins a cluster).
func (m *Mux) SetClusterID(id uint64) { m.clusterID.Store(id) }

// ClusterID is the id connections must carry.
func (m *Mux) ClusterID() uint64 { return m.clusterID.Load() }

// Addr is the address the mux listens on.
func (m *Mux) Addr() net.Addr { return m.ln.Addr() }

// Rejected counts connections closed for a failed TLS handshake, a missing
// client certificate, or a wrong preamble, cluster or shard.
func (m *Mux) Rejected() uint64 { return m.rejected.Load() }

// Serve accepts connections until Close. Each connection's preamble is read
// on its own goroutine so one slow peer cannot hold up the others.
func (m *Mux) Serve() error {
	var backoff time.Duration
	for {
		conn, err := m.ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return nil
			}
			// Temporary failures (EMFILE and the like): back off and go on.
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			m.logger.Warn("raft mux accept failed", "err", err, "retry_in", backoff)
			time.Sleep(backoff)
			continue
		}
		backoff = 0
		go m.handoff(conn)
	}
}

func (m *Mux) handoff(conn net.Conn) {
	// One deadline covers the handshake and the preamble: a peer cannot
	// hold a goroutine and a socket for longer by being slow at both.
	_ = conn.SetDeadline(time.Now().Add(m.timeout))
	if m.tlsServer != nil {
		counted := &countingConn{Conn: conn}
		tc := tls.Server(counted, m.tlsServer)
		if err := tc.Handshake(); err != nil {
			if errors.Is(err, io.EOF) && counted.read == 0 {
				conn.Close() // closed without a byte: a port check (see refusesConnections)
				return
			}
			m.warnHandshake(conn, err)
			m.reject(conn, "tls handshake failed", "err", err)
			return
		}
		if len(tc.ConnectionState().PeerCertificates) == 0 {
			m.reject(conn, "no client certificate")
			return
		}
		conn = tlsConn{tc}
	}
	b := make([]byte, preambleLen)
	if _, err := io.ReadFull(conn, b); err != nil {
		if errors.Is(err, io.EOF) {
			conn.Close() // closed without a byte: a port check
			return
		}
		m.reject(conn, "unreadable preamble", "err", err)
		return
	}
	_ = conn.SetDeadline(time.Time{}) // raft idles between heartbeats
	cluster, shardID, ok := decodePreamble(b)
	if !ok {
		m.reject(conn, "bad preamble")
		return
	}
	if cluster != m.clusterID.Load() {
		m.reject(conn, "connection from another cluster", "cluster", fmt.Sprintf("%016x", cluster))
		return
	}
	m.mu.Lock()
	layer := m.layers[shardID]
	m.mu.Unlock()
	if layer == nil || !layer.deliver(conn) {
		m.reject(conn, "connection for a shard not hosted here", "shard", shardID)
	}
}

// handshakeWarnEvery limits how often failed handshakes are logged at warn
// level: one can mean a node with the wrong certificate, a flood of them a
// scanner.
const handshakeWarnEvery = 10 * time.Second

func (m *Mux) warnHandshake(conn net.Conn, err error) {
	now := time.Now().UnixNano()
	last := m.lastWarn.Load()
	if now-last < int64(handshakeWarnEvery) || !m.lastWarn.CompareAndSwap(last, now) {
		return
	}
	m.logger.Warn("raft mux refused a connection: TLS handshake failed (further failures within 10s are logged at debug level)",
		"remote", conn.RemoteAddr().String(), "err", err)
}

func (m *Mux) reject(conn net.Conn, why string, args ...any) {
	m.rejected.Add(1)
	m.logger.Debug("raft mux rejected connection", append([]any{"remote", conn.RemoteAddr().String(), "reason", why}, args...)...)
	conn.Close()
}

// Listen registers shardID and returns the stream layer its raft transport
// uses. Closing the layer unregisters it.
func (m *Mux) Listen(shardID uint32) (*StreamLayer, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return nil, net.ErrClosed
	}
	if _, ok := m.layers[shardID]; ok {
		return nil, fmt.Errorf("shard %d already listens on the raft mux", shardID)
	}
	l := &StreamLayer{mux: m, shardID: shardID, conns: make(chan net.Conn),
		done: make(chan struct{}), accepted: map[net.Conn]struct{}{}}
	m.layers[shardID] = l
	return l, nil
}

func (m *Mux) unregister(l *StreamLayer) {
	m.mu.Lock()
	if m.layers[l.shardID] == l {
		delete(m.layers, l.shardID)
	}
	m.mu.Unlock()
}

// Close stops accepting and closes every registered layer.
func (m *Mux) Close() error {
	m.mu.Lock()
	m.closed = true
	layers := make([]*StreamLayer, 0, len(m.layers))
	for _, l := range m.layers {
		layers = append(layers, l)
	}
	m.mu.Unlock()
	for _, l := range layers {
		l.Close()
	}
	return m.ln.Close()
}

// dial opens a connection to a peer's mux, runs the TLS handshake if the
// mux uses TLS, and writes the preamble. Every connection to another node
// is opened here. The handshake and the preamble share one timeout,
// counted once the TCP connection is up.
func (m *Mux) dial(addr raft.ServerAddress, shardID uint32, timeout time.Duration) (net.Conn, error) {
	conn, err := net.DialTimeout("tcp", string(addr), timeout)
	if err != nil {
		return nil, err
	}
	_ = conn.SetDeadline(time.Now().Add(timeout))
	if cfg := m.tlsClient; cfg != nil {
		if cfg.ServerName == "" && !cfg.InsecureSkipVerify {
			cfg = cfg.Clone()
			cfg.ServerName, _, _ = net.SplitHostPort(string(addr))
		}
		tc := tls.Client(conn, cfg)
		if err := tc.Handshake(); err != nil {
			conn.Close()
			return nil, fmt.Errorf("tls handshake with %s: %w", addr, err)
		}
		conn = tlsConn{tc}
	}
	if _, err := conn.Write(encodePreamble(m.clusterID.Load(), shardID)); err != nil {
		conn.Close()
		return nil, err
	}
	_ = conn.SetDeadline(time.Time{})
	return conn, nil
}

// tlsConn is a TLS connection whose Close closes the TCP connection at once.
// tls.Conn.Close first sends a close_notify alert, which blocks for up to
// five seconds on a peer that stopped reading, and shutdown closes every
// connection of a shard in turn. raft and net/rpc delimit their own
// messages, so the alert protects nothing here.
type tlsConn struct{ *tls.Conn }

func (c tlsConn) Close() error { return c.NetConn().Close() }

// countingConn counts the bytes read through it, so that a connection
// closed before sending anything (a port check) can be told from a failed
// handshake. Only the accepting goroutine reads it during the handshake.
type countingConn struct {
	net.Conn
	read int
}

func (c *countingConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	c.read += n
	return n, err
}
