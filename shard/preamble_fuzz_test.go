package shard

import (
	"bytes"
	"io"
	"log/slog"
	"net"
	"testing"
	"time"
)

// FuzzMuxHandoff feeds arbitrary bytes to the mux as a peer's first bytes.
// Whatever they are, the mux never panics, and it hands the connection to a
// shard only when they start with exactly the preamble of this cluster and
// of that shard, which then sees the bytes after the preamble untouched.
func FuzzMuxHandoff(f *testing.F) {
	const cluster, hosted = 0x5e55_10d0_0000_0001, 7
	f.Add(encodePreamble(cluster, hosted))
	f.Add(append(encodePreamble(cluster, hosted), "raft bytes"...))
	f.Add(encodePreamble(cluster+1, hosted))
	f.Add(encodePreamble(cluster, hosted+1))
	f.Add([]byte("SSD"))
	f.Add([]byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"))
	f.Add([]byte{0x16, 0x03, 0x01, 0x00, 0x05}) // a TLS ClientHello's start
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		f.Fatal(err)
	}
	defer ln.Close()
	m := NewMux(ln, ln.Addr(), cluster, slog.New(slog.NewTextHandler(io.Discard, nil)))
	m.timeout = 200 * time.Millisecond
	layer, err := m.Listen(hosted)
	if err != nil {
		f.Fatal(err)
	}
	defer layer.Close()
	f.Fuzz(func(t *testing.T, in []byte) {
		peer, ours := net.Pipe()
		defer peer.Close()
		go func() {
			peer.Write(in)
			peer.Close()
		}()
		done := make(chan struct{})
		go func() { m.handoff(ours); close(done) }()

		c, want := uint64(cluster), uint32(hosted)
		got, gotShard, ok := decodePreamble(in[:min(len(in), preambleLen)])
		accept := ok && got == c && gotShard == want
		select {
		case conn := <-layer.conns:
			if !accept {
				t.Fatalf("%x was handed to shard %d", in, hosted)
			}
			rest, _ := io.ReadAll(conn)
			if !bytes.Equal(rest, in[preambleLen:]) {
				t.Fatalf("shard read %x after the preamble, want %x", rest, in[preambleLen:])
			}
			conn.Close()
			<-done
		case <-done:
			if accept {
				t.Fatalf("a valid preamble %x was refused", in)
			}
		}
	})
}

// FuzzDecodePreamble: a preamble decodes to what it was encoded from, and
// anything else that decodes re-encodes to the same bytes.
func FuzzDecodePreamble(f *testing.F) {
	f.Add(encodePreamble(1, 2))
	f.Add(make([]byte, preambleLen))
	f.Fuzz(func(t *testing.T, in []byte) {
		c, s, ok := decodePreamble(in)
		if ok && !bytes.Equal(encodePreamble(c, s), in) {
			t.Fatalf("%x decoded to (%x, %d), which encodes differently", in, c, s)
		}
	})
}
