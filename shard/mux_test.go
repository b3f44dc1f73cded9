package shard_test

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/sessiond/sessiond/shard"
)

// preamble is the wire format every raft connection opens with, written out
// by hand so that a change to it fails here: "SSD", version 1, cluster id,
// shard id, big-endian.
func preamble(clusterID uint64, shardID uint32) []byte {
	b := []byte{'S', 'S', 'D', 1}
	b = binary.BigEndian.AppendUint64(b, clusterID)
	return binary.BigEndian.AppendUint32(b, shardID)
}

// testMux is a bare mux on a loopback port, without raft, so a test can see
// exactly which connections reach which shard.
type testMux struct {
	mux  *shard.Mux
	addr string
}

func newTestMux(t *testing.T) *testMux {
	t.Helper()
	ln := listen(t, "")
	m := shard.NewMux(ln, ln.Addr(), testClusterID, testLogger())
	served := make(chan struct{})
	go func() {
		defer close(served)
		if err := m.Serve(); err != nil {
			t.Errorf("Serve: %v", err)
		}
	}()
	t.Cleanup(func() {
		m.Close()
		<-served
	})
	return &testMux{mux: m, addr: ln.Addr().String()}
}

// acceptAll hands every connection the layer accepts, identified by the
// first line the peer writes, to the returned channel.
func acceptAll(l *shard.StreamLayer) <-chan string {
	out := make(chan string, 16)
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				close(out)
				return
			}
			go func() {
				defer c.Close()
				b := make([]byte, 8)
				if _, err := io.ReadFull(c, b); err == nil {
					out <- string(b)
				}
			}()
		}
	}()
	return out
}

// dialRaw connects to addr and writes b (a preamble or garbage) and a
// marker that identifies the connection if it is ever accepted.
func dialRaw(t *testing.T, addr string, b []byte, marker string) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if _, err := c.Write(append(append([]byte{}, b...), marker...)); err != nil {
		t.Fatal(err)
	}
	return c
}

func waitRejected(t *testing.T, m *shard.Mux, want uint64) {
	t.Helper()
	eventually(t, 15*time.Second, func() error {
		if got := m.Rejected(); got < want {
			return fmt.Errorf("mux rejected %d connections, want %d", got, want)
		}
		return nil
	})
}

func expectOnly(t *testing.T, got <-chan string, want string) {
	t.Helper()
	select {
	case m := <-got:
		if m != want {
			t.Fatalf("shard accepted connection %q, want %q", m, want)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("connection %q never reached its shard", want)
	}
	select {
	case m, ok := <-got:
		if ok {
			t.Fatalf("shard also accepted connection %q", m)
		}
	default:
	}
}

func TestMuxHandsEachConnectionToTheShardItNames(t *testing.T) {
	tm := newTestMux(t)
	l0, err := tm.mux.Listen(0)
	if err != nil {
		t.Fatal(err)
	}
	l1, err := tm.mux.Listen(1)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tm.mux.Listen(1); err == nil {
		t.Fatal("a second Listen on shard 1 succeeded")
	}
	if l0.Addr().String() != tm.addr || l1.Addr().String() != tm.addr {
		t.Fatalf("layers advertise %s and %s, want the mux address %s", l0.Addr(), l1.Addr(), tm.addr)
	}
	got0, got1 := acceptAll(l0), acceptAll(l1)
	for _, c := range []struct {
		layer  *shard.StreamLayer
		marker string
	}{{l1, "to-one-1"}, {l0, "to-zero0"}, {l1, "to-one-2"}} {
		conn, err := c.layer.Dial(raft.ServerAddress(tm.addr), 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		if _, err := conn.Write([]byte(c.marker)); err != nil {
			t.Fatal(err)
		}
	}
	expectOnly(t, got0, "to-zero0")
	seen := map[string]bool{<-got1: true, <-got1: true}
	if !seen["to-one-1"] || !seen["to-one-2"] {
		t.Fatalf("shard 1 accepted %v", seen)
	}
	if r := tm.mux.Rejected(); r != 0 {
		t.Fatalf("mux rejected %d good connections", r)
	}
}

func TestMuxRefusesConnectionFromAnotherCluster(t *testing.T) {
	tm := newTestMux(t)
	l0, err := tm.mux.Listen(0)
	if err != nil {
		t.Fatal(err)
	}
	got := acceptAll(l0)
	bad := dialRaw(t, tm.addr, preamble(testClusterID+1, 0), "stranger")
	if err := closedByPeer(bad); err != nil {
		t.Fatal(err)
	}
	waitRejected(t, tm.mux, 1)
	dialRaw(t, tm.addr, preamble(testClusterID, 0), "member00")
	expectOnly(t, got, "member00")

	// A node learns its cluster id when it joins; from then on the old id
	// is the stranger.
	tm.mux.SetClusterID(testClusterID + 1)
	old := dialRaw(t, tm.addr, preamble(testClusterID, 0), "old-id00")
	if err := closedByPeer(old); err != nil {
		t.Fatal(err)
	}
	waitRejected(t, tm.mux, 2)
	dialRaw(t, tm.addr, preamble(testClusterID+1, 0), "new-id00")
	expectOnly(t, got, "new-id00")
}

func TestMuxRefusesConnectionForAShardItDoesNotHost(t *testing.T) {
	tm := newTestMux(t)
	l0, err := tm.mux.Listen(0)
	if err != nil {
		t.Fatal(err)
	}
	got := acceptAll(l0)
	for i, s := range []uint32{1, 7, 1 << 31} {
		c := dialRaw(t, tm.addr, preamble(testClusterID, s), fmt.Sprintf("shard%03d", s%1000))
		if err := closedByPeer(c); err != nil {
			t.Fatalf("connection for unhosted shard %d: %v", s, err)
		}
		waitRejected(t, tm.mux, uint64(i+1))
	}
	dialRaw(t, tm.addr, preamble(testClusterID, 0), "hosted00")
	expectOnly(t, got, "hosted00")
}

func TestMuxRefusesGarbagePreamble(t *testing.T) {
	tm := newTestMux(t)
	l0, err := tm.mux.Listen(0)
	if err != nil {
		t.Fatal(err)
	}
	got := acceptAll(l0)
	good := preamble(testClusterID, 0)
	badMagic := append([]byte("XSD"), good[3:]...)
	badVersion := append(append([]byte{}, good[:3]...), append([]byte{2}, good[4:]...)...)
	http := []byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	for i, b := range [][]byte{badMagic, badVersion, http} {
		c := dialRaw(t, tm.addr, b, "garbage!")
		if err := closedByPeer(c); err != nil {
			t.Fatalf("garbage %d: %v", i, err)
		}
		waitRejected(t, tm.mux, uint64(i+1))
	}
	// A peer that sends part of a preamble and hangs up.
	short, err := net.Dial("tcp", tm.addr)
	if err != nil {
		t.Fatal(err)
	}
	short.Write(good[:5])
	short.Close()
	waitRejected(t, tm.mux, 4)
	// A peer that sends nothing is cut off by the preamble deadline.
	silent, err := net.Dial("tcp", tm.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	if err := closedByPeer(silent); err != nil {
		t.Fatalf("silent peer: %v", err)
	}
	waitRejected(t, tm.mux, 5)

	dialRaw(t, tm.addr, good, "good0000")
	expectOnly(t, got, "good0000")
}

func TestStreamLayerCloseEndsAcceptAndItsConnections(t *testing.T) {
	tm := newTestMux(t)
	l0, err := tm.mux.Listen(0)
	if err != nil {
		t.Fatal(err)
	}
	accepted := make(chan net.Conn)
	acceptErr := make(chan error, 1)
	go func() {
		for {
			c, err := l0.Accept()
			if err != nil {
				acceptErr <- err
				return
			}
			accepted <- c
		}
	}()
	peer := dialRaw(t, tm.addr, preamble(testClusterID, 0), "")
	var server net.Conn
	select {
	case server = <-accepted:
	case <-time.After(10 * time.Second):
		t.Fatal("connection not accepted")
	}
	_ = server // raft would now sit in a read on it

	if err := l0.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-acceptErr:
		if !errors.Is(err, net.ErrClosed) {
			t.Fatalf("Accept after Close = %v, want net.ErrClosed", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Accept still blocked after Close")
	}
	if _, err := l0.Accept(); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("second Accept after Close = %v, want net.ErrClosed", err)
	}
	if err := closedByPeer(peer); err != nil {
		t.Fatalf("connection accepted before Close: %v", err)
	}
	if err := l0.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}

	// The shard is no longer hosted: its connections are refused.
	late := dialRaw(t, tm.addr, preamble(testClusterID, 0), "late0000")
	if err := closedByPeer(late); err != nil {
		t.Fatal(err)
	}
	waitRejected(t, tm.mux, 1)

	// The shard can be hosted again.
	again, err := tm.mux.Listen(0)
	if err != nil {
		t.Fatalf("Listen after Close: %v", err)
	}
	got := acceptAll(again)
	dialRaw(t, tm.addr, preamble(testClusterID, 0), "again000")
	expectOnly(t, got, "again000")

	// After the mux closes, no layer can be opened and open ones end.
	if err := tm.mux.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := tm.mux.Listen(3); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Listen after mux Close = %v, want net.ErrClosed", err)
	}
	if _, err := again.Accept(); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Accept after mux Close = %v, want net.ErrClosed", err)
	}
}

// A connection closed before sending a byte is a port check (a node
// probing whether a peer's process is gone, a load balancer): it is closed
// without being counted as refused, while one that sends anything wrong
// still is.
func TestMuxClosesAPortCheckWithoutCountingItAsRefused(t *testing.T) {
	tm := newTestMux(t)
	check, err := net.Dial("tcp", tm.addr)
	if err != nil {
		t.Fatal(err)
	}
	check.Close()
	short, err := net.Dial("tcp", tm.addr)
	if err != nil {
		t.Fatal(err)
	}
	short.Write(preamble(testClusterID, 0)[:5])
	short.Close()
	waitRejected(t, tm.mux, 1)
	time.Sleep(200 * time.Millisecond) // room for a late count of the port check
	if got := tm.mux.Rejected(); got != 1 {
		t.Fatalf("mux counted %d refused connections, want 1 (the short preamble, not the port check)", got)
	}
}
