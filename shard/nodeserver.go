package shard

import (
	"encoding"
	"net/rpc"
	"sync"
)

// nodeServer serves node RPCs on a connection as net/rpc's ServeCodec
// does, with what ServeCodec costs on every call taken out: it finds a
// method by reflection and runs every call on a new goroutine, whose small
// first stack a forwarded write or a raft append outgrows (reflection,
// raft, its metrics library), so each call had its stack copied into a
// larger one. Here methods are looked up in a table built at start, and
// calls run on workers that outlive a call and keep their grown stacks; a
// call that finds every worker busy gets a goroutine of its own, as before.
//
// The wire behaviour is net/rpc's, so net/rpc clients and servers on
// other nodes talk to it unchanged: responses carry the call's sequence
// number in any order, a method's error comes back as the call's error
// and leaves the connection open, and an unknown method is answered
// "rpc: can't find method …", which callers test for (commitbeat.go).
//
// One nodeServer serves every connection of a host: serveCodec may run for
// many connections at once, and stop may be called from any goroutine.
type nodeServer struct {
	methods map[string]nodeMethod
	work    chan func() // idle workers receive from it
	quit    chan struct{}
	stopped sync.Once
}

// nodeMethod reads a call's arguments from the codec and returns the call
// to run, or the error reading them.
type nodeMethod func(c rpc.ServerCodec) (call func() (reply any, err error), err error)

// method adapts an RPC method with net/rpc's signature to the table.
func method[A, R any, PA interface {
	*A
	encoding.BinaryUnmarshaler
}](f func(A, *R) error) nodeMethod {
	return func(c rpc.ServerCodec) (func() (any, error), error) {
		var args A
		if err := c.ReadRequestBody(PA(&args)); err != nil {
			return nil, err
		}
		return func() (any, error) {
			reply := new(R)
			return reply, f(args, reply)
		}, nil
	}
}

// nodeWorkers is how many calls a host serves on workers at once: about
// the calls in flight on a busy node of three with 16 shards (an append
// per follower per shard, and forwarded writes).
const nodeWorkers = 64

func newNodeServer(methods map[string]nodeMethod, workers int) *nodeServer {
	s := &nodeServer{methods: methods, work: make(chan func()), quit: make(chan struct{})}
	for range workers {
		go s.worker()
	}
	return s
}

func (s *nodeServer) worker() {
	for {
		select {
		case f := <-s.work:
			f()
		case <-s.quit:
			return
		}
	}
}

// run runs f on an idle worker, or on a goroutine of its own when there is
// none (every worker busy, or the server stopped).
func (s *nodeServer) run(f func()) {
	select {
	case s.work <- f:
	default:
		go f()
	}
}

// stop ends the workers: an idle one at once, a busy one when its call
// returns (stop does not wait for it, so a call that is slow to notice the
// shards closing does not hold up the host's close). Connections still
// served afterwards run each call on a goroutine of its own.
func (s *nodeServer) stop() {
	s.stopped.Do(func() { close(s.quit) })
}

// serveCodec serves calls from c until reading a request fails, then waits
// for the calls in flight to answer and closes c.
func (s *nodeServer) serveCodec(c rpc.ServerCodec) {
	var sending sync.Mutex // one response written at a time
	respond := func(req rpc.Request, reply any, err error) {
		resp := rpc.Response{ServiceMethod: req.ServiceMethod, Seq: req.Seq}
		if err != nil {
			resp.Error, reply = err.Error(), nil
		}
		sending.Lock()
		// A failed write breaks the connection, which ends the read loop.
		_ = c.WriteResponse(&resp, reply)
		sending.Unlock()
	}
	var inFlight sync.WaitGroup
	for {
		var req rpc.Request
		if err := c.ReadRequestHeader(&req); err != nil {
			break
		}
		m, ok := s.methods[req.ServiceMethod]
		if !ok {
			if err := c.ReadRequestBody(nil); err != nil {
				break
			}
			respond(req, nil, rpc.ServerError("rpc: can't find method "+req.ServiceMethod))
			continue
		}
		call, err := m(c)
		if err != nil {
			respond(req, nil, err)
			continue
		}
		inFlight.Add(1)
		s.run(func() {
			defer inFlight.Done()
			reply, err := call()
			respond(req, reply, err)
		})
	}
	inFlight.Wait()
	c.Close()
}
