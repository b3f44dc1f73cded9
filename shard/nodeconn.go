package shard

import (
	"errors"
	"net"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
)

// nodeRPCWriteTimeout bounds one write on a node RPC connection. A peer
// that stops reading (paused, cut off without a reset) would otherwise hold
// every later call to it, heartbeats included, forever. A write that times
// out breaks the connection instead, failing the calls on it, and the next
// call dials afresh.
const nodeRPCWriteTimeout = 2 * time.Second

// maxUnsentBytes bounds what a node connection holds for a peer that does
// not read fast enough; beyond it writes fail and the connection breaks.
const maxUnsentBytes = 64 << 20

// errUnsentBacklog breaks a connection whose peer has not taken
// maxUnsentBytes.
var errUnsentBacklog = errors.New("node rpc: peer is not reading; too much unsent")

// nodeConn is a node RPC connection whose writes are coalesced: Write
// copies the bytes into a buffer and returns, and one goroutine per
// connection sends everything buffered with one write system call. Every
// call between two nodes (forwarded writes, read indexes, heartbeats, raft
// appends, and their answers) shares the connection, so under load many
// of them leave in one segment, where net/rpc alone would make a system
// call for each message.
//
// A failed send closes the connection, which fails every call waiting on
// it; later writes return the error. nodeConn remembers that it broke, so a
// caller can tell a pooled connection that was already dead before it sent
// anything. Write and Close are safe for concurrent use.
type nodeConn struct {
	net.Conn
	broken atomic.Bool

	// onPeerClose, when set before the first Read, is called once, on the
	// reading goroutine, when a read finds that the other end closed the
	// connection (not this node). It must not block.
	onPeerClose   func()
	peerCloseOnce sync.Once

	wake chan struct{} // a token while unsent bytes wait
	done chan struct{} // closed by Close

	mu      sync.Mutex
	unsent  []byte
	sendErr error // set once a send failed or the connection closed
}

func newNodeConn(c net.Conn) *nodeConn {
	nc := &nodeConn{Conn: c, wake: make(chan struct{}, 1), done: make(chan struct{})}
	go nc.sendLoop()
	return nc
}

// Write queues b to be sent. It fails only once the connection broke.
func (c *nodeConn) Write(b []byte) (int, error) {
	c.mu.Lock()
	switch {
	case c.sendErr != nil:
		err := c.sendErr
		c.mu.Unlock()
		return 0, err
	case len(c.unsent)+len(b) > maxUnsentBytes:
		c.sendErr = errUnsentBacklog
		c.mu.Unlock()
		c.fail()
		return 0, errUnsentBacklog
	}
	c.unsent = append(c.unsent, b...)
	c.mu.Unlock()
	select {
	case c.wake <- struct{}{}:
	default: // the sender is already due to run
	}
	return len(b), nil
}

// sendLoop sends whatever was written, as it comes, until the connection
// closes or a send fails.
func (c *nodeConn) sendLoop() {
	var sending []byte
	for {
		select {
		case <-c.wake:
		case <-c.done:
			return
		}
		// Let the goroutines that are ready to write now (other groups'
		// appends released by the same log commit) add theirs first.
		runtime.Gosched()
		c.mu.Lock()
		sending, c.unsent = c.unsent, sending[:0]
		c.mu.Unlock()
		if len(sending) == 0 {
			continue
		}
		err := c.Conn.SetWriteDeadline(time.Now().Add(nodeRPCWriteTimeout))
		if err == nil {
			_, err = c.Conn.Write(sending)
		}
		if err != nil {
			c.mu.Lock()
			if c.sendErr == nil {
				c.sendErr = err
			}
			c.mu.Unlock()
			c.fail()
			return
		}
		if cap(sending) > 1<<20 {
			sending = nil // do not keep a burst's buffer for good
		}
	}
}

// fail marks the connection broken and closes it, so the reads of every
// call waiting on it fail.
func (c *nodeConn) fail() {
	c.broken.Store(true)
	c.Conn.Close()
}

func (c *nodeConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	if err != nil {
		c.broken.Store(true)
		if c.onPeerClose != nil && closedByPeer(err) {
			c.peerCloseOnce.Do(c.onPeerClose)
		}
	}
	return n, err
}

// Close closes the connection; bytes not yet sent are dropped.
func (c *nodeConn) Close() error {
	c.mu.Lock()
	if c.sendErr == nil {
		c.sendErr = net.ErrClosed
	}
	if !isClosed(c.done) {
		close(c.done)
	}
	c.mu.Unlock()
	c.broken.Store(true)
	return c.Conn.Close()
}

func isClosed(ch chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}
