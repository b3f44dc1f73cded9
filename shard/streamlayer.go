package shard

import (
	"net"
	"sync"
	"time"

	"github.com/hashicorp/raft"
)

// StreamLayer is one shard's view of the node's raft mux: a raft.StreamLayer
// whose Accept yields the connections whose preamble named this shard and
// whose Dial writes that preamble.
type StreamLayer struct {
	mux     *Mux
	shardID uint32
	conns   chan net.Conn
	done    chan struct{}

	mu       sync.Mutex
	closed   bool
	accepted map[net.Conn]struct{}
}

var _ raft.StreamLayer = (*StreamLayer)(nil)

// deliver hands conn to Accept, or reports false if the layer has closed.
func (l *StreamLayer) deliver(conn net.Conn) bool {
	select {
	case l.conns <- conn:
		return true
	case <-l.done:
		return false
	}
}

// Accept waits for the next connection for this shard. After Close it returns
// net.ErrClosed, which ends raft's listen loop.
func (l *StreamLayer) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		l.mu.Lock()
		defer l.mu.Unlock()
		if l.closed {
			c.Close()
			return nil, net.ErrClosed
		}
		tc := &trackedConn{Conn: c, layer: l}
		l.accepted[tc] = struct{}{}
		return tc, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

// Close unregisters the shard from the mux and closes every connection it
// accepted: raft can sit in a read without deadline (an InstallSnapshot from a
// peer that died), which would otherwise block the shard's shutdown.
func (l *StreamLayer) Close() error {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return nil
	}
	l.closed = true
	close(l.done)
	conns := l.accepted
	l.accepted = nil
	l.mu.Unlock()
	l.mux.unregister(l)
	for c := range conns {
		c.(*trackedConn).Conn.Close()
	}
	return nil
}

// Addr is the node's advertised raft address, the same for every shard.
func (l *StreamLayer) Addr() net.Addr { return l.mux.advertise }

// Dial connects to the same shard on the node at address.
func (l *StreamLayer) Dial(address raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	return l.mux.dial(address, l.shardID, timeout)
}

// trackedConn removes itself from its layer's set when raft closes it.
type trackedConn struct {
	net.Conn
	layer *StreamLayer
	once  sync.Once
}

func (c *trackedConn) Close() error {
	c.once.Do(func() {
		c.layer.mu.Lock()
		delete(c.layer.accepted, c)
		c.layer.mu.Unlock()
	})
	return c.Conn.Close()
}
