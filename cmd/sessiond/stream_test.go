package main

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/sessiond/sessiond/internal/sse"
)

// streamReader follows one session's change stream and keeps every event.
// Like a browser's EventSource it reconnects whenever its stream ends, with
// the last event id it saw, to the node target names at that moment.
type streamReader struct {
	t       *testing.T
	session string
	mu      sync.Mutex
	target  *proc
	events  []sse.Event
	lastID  string
	resp    *http.Response
	stopped bool
	done    chan struct{}
}

var streamHTTP = &http.Client{}

func follow(t *testing.T, p *proc, session string) *streamReader {
	r := &streamReader{t: t, session: session, target: p, done: make(chan struct{})}
	go r.run()
	t.Cleanup(r.stop)
	return r
}

// moveTo makes later reconnections go to p.
func (r *streamReader) moveTo(p *proc) {
	r.mu.Lock()
	r.target = p
	r.mu.Unlock()
}

func (r *streamReader) run() {
	defer close(r.done)
	for {
		r.mu.Lock()
		if r.stopped {
			r.mu.Unlock()
			return
		}
		p, last := r.target, r.lastID
		r.mu.Unlock()
		req, _ := http.NewRequest(http.MethodGet, p.url("/api/chat/session/"+r.session+"/events"), nil)
		if last != "" {
			req.Header.Set("Last-Event-ID", last)
		}
		resp, err := streamHTTP.Do(req)
		if err != nil || resp.StatusCode != http.StatusOK {
			if err == nil {
				resp.Body.Close()
			}
			time.Sleep(100 * time.Millisecond)
			continue
		}
		r.mu.Lock()
		r.resp = resp
		stopped := r.stopped
		r.mu.Unlock()
		if stopped {
			resp.Body.Close()
			return
		}
		rd := sse.NewReader(resp.Body)
		for {
			ev, err := rd.Next()
			if err != nil {
				break
			}
			r.mu.Lock()
			r.events = append(r.events, ev)
			if ev.ID != "" {
				r.lastID = ev.ID
			}
			r.mu.Unlock()
		}
		resp.Body.Close()
	}
}

func (r *streamReader) stop() {
	r.mu.Lock()
	r.stopped = true
	if r.resp != nil {
		r.resp.Body.Close()
	}
	r.mu.Unlock()
	<-r.done
}

// messages returns the seqs of the message events, in arrival order, and
// waits until there are at least n.
func (r *streamReader) messages(n int) []uint64 {
	r.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		r.mu.Lock()
		var seqs []uint64
		for _, ev := range r.events {
			switch ev.Event {
			case "snapshot": // the session as it was: its messages count as seen
				var doc struct{ Messages []struct{ Seq uint64 } }
				if err := json.Unmarshal([]byte(ev.Data), &doc); err != nil {
					r.t.Fatalf("snapshot event %q: %v", ev.Data, err)
				}
				seqs = seqs[:0]
				for _, m := range doc.Messages {
					seqs = append(seqs, m.Seq)
				}
			case "message":
				var m struct{ Seq uint64 }
				if err := json.Unmarshal([]byte(ev.Data), &m); err != nil {
					r.t.Fatalf("message event %q: %v", ev.Data, err)
				}
				seqs = append(seqs, m.Seq)
			}
		}
		r.mu.Unlock()
		if len(seqs) >= n || time.Now().After(deadline) {
			return seqs
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (r *streamReader) ids() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var ids []string
	for _, ev := range r.events {
		if ev.Event != "resume" { // when a stream ends depends on the node
			ids = append(ids, ev.Event+"@"+ev.ID)
		}
	}
	return ids
}

// Two readers of one session on different nodes see the same events in the
// same order. A reader whose node is killed with kill -9 reconnects to
// another node with its last event id and, at the end, has seen every
// message exactly once and in order, although writes went on meanwhile and
// a leadership transfer moved the session's owner. (A stream may also end
// when a node that forwarded it loses the node it forwarded to; readers
// reconnect as EventSource does.)
func TestChangeStreamsAgreeAcrossNodesAndSurviveKill9(t *testing.T) {
	procs := startCluster(t, 3, 4)
	const session = "chat-stream"
	n1, n2, n3 := procs[0], procs[1], procs[2]
	if code, b := n1.appendMessage(session, "m0"); code != http.StatusCreated {
		t.Fatalf("first append = %d %v", code, b)
	}
	a, b := follow(t, n1, session), follow(t, n3, session)
	a.messages(1) // both have their snapshot before anything else is written
	b.messages(1)

	const total = 60
	for i := 1; i < total; i++ {
		p := procs[i%3]
		if i > 20 {
			p = procs[1+i%2] // n1 is dead from here on
		}
		if i == 20 {
			a.moveTo(n2)
			n1.cmd.Process.Signal(syscall.SIGKILL)
			<-n1.exited
		}
		if i == 40 {
			var owner struct{ Shard uint32 }
			_, body := get(n2.url("/v1/sessions/" + session + "/owner"))
			json.Unmarshal(body, &owner)
			if code, body := do(t, http.MethodPost, n2.url(fmt.Sprintf("/v1/shards/%d/transfer-leadership", owner.Shard)), "", ""); code != http.StatusOK {
				t.Logf("leadership transfer: %d %s (the stream must not care either way)", code, body)
			}
		}
		deadline := time.Now().Add(30 * time.Second)
		for {
			code, _ := p.appendMessage(session, fmt.Sprintf("m%d", i))
			if code == http.StatusCreated || code == http.StatusOK {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("append m%d keeps failing: %d", i, code)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	final := n2.messages(session)
	if len(final) != total {
		t.Fatalf("the session holds %d messages, want %d", len(final), total)
	}
	for _, r := range []*streamReader{a, b} {
		seqs := r.messages(total)
		if len(seqs) != total {
			t.Fatalf("a reader saw %d messages, want %d: %v\nevents: %v", len(seqs), total, seqs, r.ids())
		}
		for i, s := range seqs {
			if s != uint64(i+1) {
				t.Fatalf("a reader saw seqs %v: want 1..%d, each once, in order", seqs, total)
			}
		}
	}
	// b never moved: its events, ids included, are what a saw on two nodes.
	if ia, ib := a.ids(), b.ids(); strings.Join(ia, " ") != strings.Join(ib, " ") {
		t.Fatalf("readers disagree:\n n1→n2: %v\n n3:    %v", ia, ib)
	}
}

// A reader that stops reading is cut off, and writes to its session go on
// at their usual pace meanwhile: the stream holds nothing for it.
func TestASlowReaderIsCutOffWithoutSlowingWriters(t *testing.T) {
	p := newProc(t, 1)
	p.extraArgs = []string{"--session-write-rate", "0"}
	p.start()
	conn, err := net.Dial("tcp", p.httpAddr())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.(*net.TCPConn).SetReadBuffer(4 << 10)
	fmt.Fprintf(conn, "GET /api/chat/session/slow/events HTTP/1.1\r\nHost: x\r\n\r\n")
	streams := func() int {
		_, view := get(p.url("/v1/cluster"))
		var v struct{ Streams *int }
		if err := json.Unmarshal(view, &v); err != nil || v.Streams == nil {
			t.Fatalf("/v1/cluster: %s", view)
		}
		return *v.Streams
	}
	for deadline := time.Now().Add(10 * time.Second); streams() != 1; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the stream never opened")
		}
	}
	// Far more than the socket buffers hold, while nobody reads.
	body := fmt.Sprintf(`{"role":"user","content":%q}`, strings.Repeat("x", 32<<10))
	start := time.Now()
	for i := range 300 {
		if code, b := do(t, http.MethodPost, p.url("/api/chat/session/slow/messages"), "", body); code != http.StatusCreated {
			t.Fatalf("append %d while a reader stalls = %d %s", i, code, b)
		}
	}
	t.Logf("300 appends of 32 KiB with a stalled reader took %v", time.Since(start))
	// The server gives up on the reader, which has not read a byte.
	deadline := time.Now().Add(60 * time.Second)
	for streams() != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("the stalled stream is still served 60 s later")
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// A stream served by a node that drains (its replicas move to other nodes)
// ends with a resume event; the reader reconnects elsewhere and, with the
// writes that went on meanwhile, sees every message exactly once.
func TestAChangeStreamSurvivesADrainThatMovesItsReplica(t *testing.T) {
	procs := startCluster(t, 4, 2, "--drain-timeout", "60s")
	const session = "moving"
	if code, _ := procs[0].appendMessage(session, "m0"); code != http.StatusCreated {
		t.Fatalf("first append = %d", code)
	}
	var owner struct{ Replicas []string }
	_, body := get(procs[0].url("/v1/sessions/" + session + "/owner"))
	if err := json.Unmarshal(body, &owner); err != nil || len(owner.Replicas) == 0 {
		t.Fatalf("owner: %s", body)
	}
	byID := map[string]*proc{}
	for i, p := range procs {
		byID[fmt.Sprintf("n%d", i+1)] = p
	}
	served := byID[owner.Replicas[0]]
	var writer *proc
	for id, p := range byID {
		if id != owner.Replicas[0] {
			writer = p
			break
		}
	}
	r := follow(t, served, session)
	r.messages(1)
	r.moveTo(writer) // where it reconnects once the drained node lets go

	stop := make(chan struct{})
	var wrote sync.WaitGroup
	var n int
	wrote.Add(1)
	go func() {
		defer wrote.Done()
		for i := 1; ; i++ {
			select {
			case <-stop:
				n = i - 1
				return
			default:
			}
			for {
				code, _ := writer.appendMessage(session, fmt.Sprintf("m%d", i))
				if code == http.StatusCreated || code == http.StatusOK {
					break
				}
				time.Sleep(50 * time.Millisecond)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}()
	if code, b := do(t, http.MethodPost, writer.url("/v1/nodes/"+owner.Replicas[0]+"/drain"), "", ""); code != http.StatusAccepted {
		t.Fatalf("drain = %d %s", code, b)
	}
	select {
	case <-served.exited:
	case <-time.After(90 * time.Second):
		t.Fatal("the drained node did not exit")
	}
	time.Sleep(500 * time.Millisecond) // writes go on after the drain
	close(stop)
	wrote.Wait()
	total := n + 1
	seqs := r.messages(total)
	if len(seqs) != total {
		t.Fatalf("the reader saw %d messages, want %d: %v", len(seqs), total, r.ids())
	}
	for i, s := range seqs {
		if s != uint64(i+1) {
			t.Fatalf("the reader saw seqs %v: want 1..%d, each once, in order", seqs, total)
		}
	}
}
