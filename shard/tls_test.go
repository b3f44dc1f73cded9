package shard_test

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/sessiond/sessiond/certs"
	"github.com/sessiond/sessiond/shard"
)

// clusterTLS generates a CA and certificates for nodes in a temporary
// directory and returns each node's raft-port TLS configs.
func clusterTLS(t testing.TB, nodes ...string) map[string]*shard.MuxTLS {
	t.Helper()
	dir := t.TempDir()
	if err := certs.WriteDir(dir, nodes, nil, time.Hour, false); err != nil {
		t.Fatal(err)
	}
	out := map[string]*shard.MuxTLS{}
	for _, n := range nodes {
		s, err := certs.Load(certs.DirFiles(dir, n))
		if err != nil {
			t.Fatal(err)
		}
		out[n] = &shard.MuxTLS{Server: s.PeerServer(), Client: s.PeerClient()}
	}
	return out
}

// newTLSTestMux is newTestMux with TLS on both sides.
func newTLSTestMux(t *testing.T, cfg *shard.MuxTLS) *testMux {
	t.Helper()
	ln := listen(t, "")
	m := shard.NewMux(ln, ln.Addr(), testClusterID, testLogger())
	m.UseTLS(cfg.Server, cfg.Client)
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

func TestRaftOverMutualTLSElectsReplicatesAndCallsOtherNodes(t *testing.T) {
	tlsOf := clusterTLS(t, "n1", "n2", "n3")
	c := makeClusterWith(t, 3, 1, func(cfg *shard.HostConfig) { cfg.TLS = tlsOf[cfg.NodeID] }, 0)
	lead := c.leader(0)
	mustAppend(t, lead, "s1", "m1")
	// Node RPCs: a write proposed on a follower's host is forwarded to the
	// leader, and a follower's linearizable read asks the leader for a
	// read index.
	f := c.followers(0, lead)[0]
	if _, err := c.hostOf(f).host.Apply(context.Background(), 0, appendCmd("s1", "m2")); err != nil {
		t.Fatalf("write forwarded from a follower's host: %v", err)
	}
	eventually(t, 10*time.Second, func() error {
		if err := f.Read(context.Background(), shard.Linearizable); err != nil {
			return err
		}
		if s, ok := f.FSM().Get("s1"); !ok || s.MessageCount() != 2 {
			return fmt.Errorf("follower read shows %v", s)
		}
		return nil
	})
	c.converged(0)
	for _, h := range c.hosts {
		if r := h.host.Mux().Rejected(); r != 0 {
			t.Errorf("%s's mux rejected %d connections between members", h.id, r)
		}
	}
	// The port speaks TLS, and only TLS 1.3 with a member's certificate.
	conn, err := tls.Dial("tcp", c.hosts[0].addr, tlsOf["n2"].Client)
	if err != nil {
		t.Fatalf("a member's TLS handshake with the raft port: %v", err)
	}
	if v := conn.ConnectionState().Version; v != tls.VersionTLS13 {
		t.Errorf("raft port negotiated TLS version %x, want 1.3", v)
	}
	conn.Close()
}

func TestMuxWithTLSRefusesPeersWithoutAClusterCertificate(t *testing.T) {
	members := clusterTLS(t, "n1", "n2")
	stranger := clusterTLS(t, "n2")["n2"] // same node id, another CA
	tm := newTLSTestMux(t, members["n1"])
	l0, err := tm.mux.Listen(0)
	if err != nil {
		t.Fatal(err)
	}
	got := acceptAll(l0)
	rejected := uint64(0)
	// refused checks that the mux counted one more rejection and that no
	// connection reached the shard. A delivered connection's marker is
	// queued before the connection closes, so by the time the peer has
	// seen its connection closed, the marker would be there.
	refused := func(what string) {
		t.Helper()
		select {
		case m := <-got:
			t.Fatalf("%s: the shard accepted connection %q", what, m)
		default:
		}
		rejected++
		waitRejected(t, tm.mux, rejected)
	}

	// Without TLS, a valid preamble for the right cluster is not even read
	// as one: it is a malformed TLS record.
	plain := dialRaw(t, tm.addr, preamble(testClusterID, 0), "plaintxt")
	if err := closedByPeer(plain); err != nil {
		t.Fatalf("plain TCP client: %v", err)
	}
	refused("plain TCP client")

	// A node without TLS dials through its own mux.
	plainMux := newTestMux(t)
	if pl, err := plainMux.mux.Listen(0); err != nil {
		t.Fatal(err)
	} else if c, err := pl.Dial(raft.ServerAddress(tm.addr), 5*time.Second); err == nil {
		c.Write([]byte("plainmux"))
		if err := closedByPeer(c); err != nil {
			t.Fatalf("node without TLS: %v", err)
		}
		c.Close()
	}
	refused("node without TLS")

	// TLS clients that do not check the server, as an attacker would not:
	// one with a certificate from another CA, one with none. In TLS 1.3 the
	// client's handshake may complete before the server has judged its
	// certificate, so each also sends a preamble and a marker.
	strangerCert := stranger.Client.GetClientCertificate
	for _, c := range []struct {
		name string
		cfg  *tls.Config
	}{
		{"certificate from another CA", &tls.Config{InsecureSkipVerify: true, GetClientCertificate: strangerCert}},
		{"no certificate", &tls.Config{InsecureSkipVerify: true}},
	} {
		conn, err := tls.Dial("tcp", tm.addr, c.cfg)
		if err == nil {
			conn.Write(append(preamble(testClusterID, 0), "attacker"...))
			if err := closedByPeer(conn); err != nil {
				t.Fatalf("TLS client with %s: %v", c.name, err)
			}
			conn.Close()
		}
		refused("TLS client with " + c.name)
	}

	// A node of another cluster CA dials through its mux: it refuses the
	// server's certificate, and the server counts the failed handshake.
	strangerMux := newTLSTestMux(t, stranger)
	sl, err := strangerMux.mux.Listen(0)
	if err != nil {
		t.Fatal(err)
	}
	if c, err := sl.Dial(raft.ServerAddress(tm.addr), 5*time.Second); err == nil {
		c.Close()
		t.Fatal("a mux with another CA completed a TLS dial to a member")
	}
	refused("node with another CA")

	// A peer that connects and then says nothing is cut off by the
	// deadline that covers the handshake and the preamble.
	silent, err := net.Dial("tcp", tm.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	if err := closedByPeer(silent); err != nil {
		t.Fatalf("silent peer: %v", err)
	}
	refused("silent peer")

	// A member gets through, and is the only connection the shard ever saw.
	memberMux := newTLSTestMux(t, members["n2"])
	ml, err := memberMux.mux.Listen(0)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := ml.Dial(raft.ServerAddress(tm.addr), 5*time.Second)
	if err != nil {
		t.Fatalf("member dial: %v", err)
	}
	defer conn.Close()
	if _, err := conn.Write([]byte("member00")); err != nil {
		t.Fatal(err)
	}
	expectOnly(t, got, "member00")
	if r := tm.mux.Rejected(); r != rejected {
		t.Fatalf("mux rejected %d connections, want %d", r, rejected)
	}
}
