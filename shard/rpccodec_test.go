package shard

import (
	"bytes"
	"encoding/binary"
	"errors"
	"net"
	"net/rpc"
	"strings"
	"testing"
	"time"
)

type echoService struct{}

func (echoService) Apply(args ApplyArgs, reply *ApplyReply) error {
	if string(args.Command) == "fail" {
		return errors.New("refused: fail")
	}
	reply.Result = append([]byte("ok:"), args.Command...)
	reply.LeaderID = "n1"
	return nil
}

// TestNodeRPCCodecCarriesCallsAnswersAndErrors: calls over the codec get
// their answers, a method's error comes back as the call's error and
// leaves the connection usable, and an unknown method is refused, whether
// the server is the node's own (nodeServer, a few workers so that calls
// also run on goroutines of their own) or net/rpc's, which nodes of
// earlier versions run.
func TestNodeRPCCodecCarriesCallsAnswersAndErrors(t *testing.T) {
	netrpc := rpc.NewServer()
	if err := netrpc.RegisterName("Node", echoService{}); err != nil {
		t.Fatal(err)
	}
	own := newNodeServer(map[string]nodeMethod{"Node.Apply": method(echoService{}.Apply)}, 3)
	defer own.stop()
	for name, serve := range map[string]func(rpc.ServerCodec){"nodeServer": own.serveCodec, "net/rpc": netrpc.ServeCodec} {
		t.Run(name, func(t *testing.T) {
			a, b := net.Pipe()
			served := make(chan struct{})
			go func() {
				serve(newWireCodec(a))
				close(served)
			}()
			cl := rpc.NewClientWithCodec(newWireCodec(b))
			checkEchoCalls(t, cl)
			cl.Close()
			<-served // the server's loop ends when the client hangs up
		})
	}
}

func checkEchoCalls(t *testing.T, cl *rpc.Client) {
	t.Helper()
	calls := make([]*rpc.Call, 50)
	for i := range calls {
		calls[i] = cl.Go("Node.Apply", ApplyArgs{Shard: 1, Command: []byte{byte('a' + i%26)}}, new(ApplyReply), nil)
	}
	for i, c := range calls {
		<-c.Done
		r := c.Reply.(*ApplyReply)
		if c.Error != nil || string(r.Result) != "ok:"+string(rune('a'+i%26)) || r.LeaderID != "n1" {
			t.Fatalf("call %d: %+v, %v", i, r, c.Error)
		}
	}
	var reply ApplyReply
	if err := cl.Call("Node.Apply", ApplyArgs{Command: []byte("fail")}, &reply); err == nil || err.Error() != "refused: fail" {
		t.Fatalf("failing call: %v", err)
	}
	if err := cl.Call("Node.Nothing", ApplyArgs{}, &reply); err == nil || !strings.Contains(err.Error(), "can't find method") {
		t.Fatalf("unknown method: %v", err)
	}
	if err := cl.Call("Node.Apply", ApplyArgs{Command: []byte("x")}, &reply); err != nil || string(reply.Result) != "ok:x" {
		t.Fatalf("call after errors: %+v, %v", reply, err)
	}
}

// TestNodeRPCCodecRefusesAnOversizedFrameBeforeReadingIt: a length prefix
// over the bound fails the read without allocating the frame.
func TestNodeRPCCodecRefusesAnOversizedFrameBeforeReadingIt(t *testing.T) {
	data := binary.AppendUvarint(nil, maxFrameBytes+1)
	c := newWireCodec(&closingBuffer{*bytes.NewBuffer(data)})
	var req rpc.Request
	if err := c.ReadRequestHeader(&req); !errors.Is(err, errFrameTooLarge) {
		t.Fatalf("oversized frame: %v", err)
	}
}

// TestNodeRPCCodecKeepsNoLargeFrameBuffer: a connection reuses its frame
// buffers, reading and writing, for ordinary frames but does not keep one a
// rare large frame needed.
func TestNodeRPCCodecKeepsNoLargeFrameBuffer(t *testing.T) {
	var buf closingBuffer
	w := newWireCodec(&buf)
	small := ApplyArgs{Shard: 1, Command: bytes.Repeat([]byte("s"), 1000)}
	large := ApplyArgs{Shard: 1, Command: bytes.Repeat([]byte("l"), 2*maxKeptFrameBytes)}
	for i, a := range []ApplyArgs{small, large, small} {
		if err := w.WriteRequest(&rpc.Request{ServiceMethod: "Node.Apply", Seq: uint64(i)}, a); err != nil {
			t.Fatal(err)
		}
		if cap(w.wbuf) > maxKeptFrameBytes {
			t.Fatalf("after writing frame %d the connection keeps a %d-byte buffer", i, cap(w.wbuf))
		}
	}
	if cap(w.wbuf) == 0 {
		t.Fatal("the connection keeps no buffer for the next ordinary frame")
	}
	r := newWireCodec(&buf)
	for i, want := range []ApplyArgs{small, large, small} {
		var req rpc.Request
		var got ApplyArgs
		if err := r.ReadRequestHeader(&req); err != nil || req.Seq != uint64(i) {
			t.Fatalf("frame %d: %+v, %v", i, req, err)
		}
		if err := r.ReadRequestBody(&got); err != nil || !bytes.Equal(got.Command, want.Command) {
			t.Fatalf("frame %d body: %d bytes, %v", i, len(got.Command), err)
		}
		if cap(r.buf) > maxKeptFrameBytes {
			t.Fatalf("after frame %d the connection keeps a %d-byte buffer", i, cap(r.buf))
		}
	}
}

// TestNodeServerNeverMakesACallWaitForAWorker: with every worker busy on
// a call that cannot finish until a later call has, the later call still
// runs and answers.
func TestNodeServerNeverMakesACallWaitForAWorker(t *testing.T) {
	release := make(chan struct{})
	blocking := func(args ApplyArgs, reply *ApplyReply) error {
		if string(args.Command) == "wait" {
			<-release
		} else {
			close(release)
		}
		reply.Result = args.Command
		return nil
	}
	srv := newNodeServer(map[string]nodeMethod{"Node.Apply": method(blocking)}, 1)
	defer srv.stop()
	a, b := net.Pipe()
	go srv.serveCodec(newWireCodec(a))
	cl := rpc.NewClientWithCodec(newWireCodec(b))
	defer cl.Close()
	first := cl.Go("Node.Apply", ApplyArgs{Command: []byte("wait")}, new(ApplyReply), nil)
	second := cl.Go("Node.Apply", ApplyArgs{Command: []byte("go")}, new(ApplyReply), nil)
	select {
	case <-second.Done:
	case <-time.After(10 * time.Second):
		t.Fatal("the second call waited for the busy worker")
	}
	if second.Error != nil || string(second.Reply.(*ApplyReply).Result) != "go" {
		t.Fatalf("second call: %+v, %v", second.Reply, second.Error)
	}
	<-first.Done
	if first.Error != nil || string(first.Reply.(*ApplyReply).Result) != "wait" {
		t.Fatalf("first call: %+v, %v", first.Reply, first.Error)
	}
}
