package shard

import (
	"bytes"
	"errors"
	"io"
	"net"
	"sync"
	"testing"
	"time"
)

// TestNodeConnKeepsEveryWriteWholeAndInOrder: concurrent writers' bytes
// arrive complete, each write contiguous, in the order of the Write calls
// of each writer.
func TestNodeConnKeepsEveryWriteWholeAndInOrder(t *testing.T) {
	client, server := tcpPair(t)
	nc := newNodeConn(client)
	defer nc.Close()
	const writers, each = 8, 500
	var wg sync.WaitGroup
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < each; i++ {
				msg := bytes.Repeat([]byte{byte('a' + w)}, 1+i%300)
				msg = append(msg, '\n')
				if _, err := nc.Write(msg); err != nil {
					t.Errorf("write: %v", err)
					return
				}
			}
		}()
	}
	got := make(chan []byte, 1)
	go func() {
		b, _ := io.ReadAll(io.LimitReader(server, int64(expectedBytes(writers, each))))
		got <- b
	}()
	wg.Wait()
	var b []byte
	select {
	case b = <-got:
	case <-time.After(20 * time.Second):
		t.Fatal("the bytes written never all arrived")
	}
	next := make([]int, writers) // each writer's next message number
	for _, line := range bytes.Split(bytes.TrimSuffix(b, []byte("\n")), []byte("\n")) {
		w := int(line[0] - 'a')
		if w < 0 || w >= writers || !bytes.Equal(line, bytes.Repeat(line[:1], len(line))) {
			t.Fatalf("a write arrived torn or mixed with another: %q", line[:min(len(line), 40)])
		}
		if want := 1 + next[w]%300; len(line) != want {
			t.Fatalf("writer %d: message %d has %d bytes, want %d (out of order)", w, next[w], len(line), want)
		}
		next[w]++
	}
	for w, n := range next {
		if n != each {
			t.Fatalf("writer %d: %d of %d messages arrived", w, n, each)
		}
	}
}

func expectedBytes(writers, each int) int {
	n := 0
	for i := 0; i < each; i++ {
		n += 2 + i%300
	}
	return n * writers
}

// TestNodeConnBreaksWhenThePeerStopsReading: a peer that reads nothing
// makes the pending send time out; the connection then counts as broken
// and refuses later writes, instead of buffering without end.
func TestNodeConnBreaksWhenThePeerStopsReading(t *testing.T) {
	client, _ := tcpPair(t) // the server side never reads
	nc := newNodeConn(client)
	defer nc.Close()
	chunk := make([]byte, 1<<20)
	deadline := time.Now().Add(20 * time.Second)
	for !nc.broken.Load() {
		if time.Now().After(deadline) {
			t.Fatal("the connection to a peer that never reads did not break within 20s")
		}
		if _, err := nc.Write(chunk); err != nil {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if _, err := nc.Write([]byte("x")); err == nil {
		t.Fatal("a broken connection accepted a write")
	}
}

// TestNodeConnRefusesWritesAfterClose: Close ends the sender and later
// writes fail with net.ErrClosed.
func TestNodeConnRefusesWritesAfterClose(t *testing.T) {
	client, _ := tcpPair(t)
	nc := newNodeConn(client)
	nc.Close()
	if _, err := nc.Write([]byte("x")); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("write after close = %v, want net.ErrClosed", err)
	}
	if err := nc.Close(); err == nil {
		t.Log("second close reported no error") // either is fine; it must not panic
	}
}

func tcpPair(t *testing.T) (client, server net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, _ := ln.Accept()
		accepted <- c
	}()
	client, err = net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	server = <-accepted
	if server == nil {
		t.Fatal("accept failed")
	}
	t.Cleanup(func() { client.Close(); server.Close() })
	return client, server
}
