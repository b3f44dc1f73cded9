package check

// The workload: logical clients, one outstanding request each, over a
// bounded set of sessions that rotate so no session's history grows past
// what the checker handles in seconds.

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	api "github.com/sessiond/sessiond/client"
)

// WorkloadConfig sizes the workload.
type WorkloadConfig struct {
	Clients        int           // logical clients, one outstanding request each
	Sessions       int           // sessions written at once; they rotate
	OpsPerSession  int           // operations before a session is retired
	DeleteSessions int           // sessions used for deletes, kept apart
	RequestTimeout time.Duration // one HTTP attempt
	RetryDeadline  time.Duration // how long a write is retried after definite failures
	RunID          string        // prefix of every session id
	Seed           uint64
}

// DefaultWorkload is the CI-sized workload.
func DefaultWorkload() WorkloadConfig {
	return WorkloadConfig{
		Clients: 16, Sessions: 24, OpsPerSession: 250, DeleteSessions: 4,
		RequestTimeout: 2 * time.Second, RetryDeadline: 10 * time.Second,
		RunID: "chk", Seed: 1,
	}
}

var fieldNames = []string{"pendingMatch", "bookingInfo", "lastSearchCriteria"}

// slot is one live session of a pool; after limit operations it is
// replaced by a fresh session id.
type slot struct {
	id  string
	n   int // the order in which slots were made
	ops atomic.Int64
}

// pool hands out sessions and rotates them.
type pool struct {
	prefix string
	limit  int64

	mu      sync.Mutex
	next    int
	slots   []*slot
	touched []string // every session id ever handed out, in order
}

func newPool(prefix string, size, limit int) *pool {
	p := &pool{prefix: prefix, limit: int64(limit)}
	for range size {
		p.slots = append(p.slots, p.fresh())
	}
	return p
}

func (p *pool) fresh() *slot {
	s := &slot{id: fmt.Sprintf("%s%d", p.prefix, p.next), n: p.next}
	p.next++
	p.touched = append(p.touched, s.id)
	return s
}

// pick returns a session for one operation.
func (p *pool) pick(r *rand.Rand) string {
	p.mu.Lock()
	defer p.mu.Unlock()
	i := r.IntN(len(p.slots))
	s := p.slots[i]
	if s.ops.Add(1) >= p.limit {
		p.slots[i] = p.fresh()
	}
	return s.id
}

// live reports whether session is still handed out.
func (p *pool) live(session string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, s := range p.slots {
		if s.id == session {
			return true
		}
	}
	return false
}

// newest is the most recently made session still handed out for which
// skip is false, "" if none.
func (p *pool) newest(skip func(string) bool) string {
	p.mu.Lock()
	defer p.mu.Unlock()
	var best *slot
	for _, s := range p.slots {
		if (best == nil || s.n > best.n) && !skip(s.id) {
			best = s
		}
	}
	if best == nil {
		return ""
	}
	return best.id
}

func (p *pool) all() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.touched...)
}

// Workload runs the clients against a set of nodes.
type Workload struct {
	cfg     WorkloadConfig
	hist    *History
	http    *api.Client
	nodes   func() []Node
	regular *pool
	deletes *pool

	unexpected atomic.Int64
	suspectMu  sync.Mutex
	suspect    map[string]time.Time // node → avoid until

	// track is what the change-stream readers need to know of a session;
	// an operation's return time is taken, and the operation recorded,
	// under trackMu.
	trackMu sync.Mutex
	track   map[string]*sessionTrack
}

// sessionTrack is a session's operations in flight and the highest seq an
// append to it was acknowledged at.
type sessionTrack struct {
	inflight int
	maxAcked uint64
}

// Node is one node the clients can talk to.
type Node struct {
	Name string
	URL  string // base URL, http://host:port or https://host:port
}

// NewWorkload prepares a workload whose requests present creds; nodes is
// asked for the current node list before every request.
func NewWorkload(cfg WorkloadConfig, creds Credentials, hist *History, nodes func() []Node) *Workload {
	return &Workload{
		cfg: cfg, hist: hist, http: newHTTPClient(cfg.RequestTimeout, creds), nodes: nodes,
		regular: newPool(cfg.RunID+"-s", cfg.Sessions, cfg.OpsPerSession),
		deletes: newPool(cfg.RunID+"-d", cfg.DeleteSessions, max(cfg.OpsPerSession/8, 8)),
		suspect: map[string]time.Time{}, track: map[string]*sessionTrack{},
	}
}

// Sessions returns every session the workload wrote (regular sessions
// first, then the sessions used for deletes) .
func (w *Workload) Sessions() (regular, deletes []string) { return w.regular.all(), w.deletes.all() }

// begin counts an operation on session in flight until it is recorded.
func (w *Workload) begin(session string) {
	w.trackMu.Lock()
	defer w.trackMu.Unlock()
	t := w.track[session]
	if t == nil {
		t = &sessionTrack{}
		w.track[session] = t
	}
	t.inflight++
}

// done takes the operation's return time and records it.
func (w *Workload) done(op Op) {
	w.trackMu.Lock()
	defer w.trackMu.Unlock()
	op.Return = w.hist.Now()
	w.hist.add(op)
	t := w.track[op.Input.Session]
	t.inflight--
	if op.Input.Kind == KindAppend && op.Output.Status == StatusOK {
		for _, seq := range op.Output.Seqs {
			t.maxAcked = max(t.maxAcked, seq)
		}
	}
}

// settled says how far a reader of session's change stream must follow
// it: every append acknowledged by the history time now has a seq of at
// most maxAcked. idle reports that no operation on it is in flight.
func (w *Workload) settled(session string) (now int64, maxAcked uint64, idle bool) {
	w.trackMu.Lock()
	defer w.trackMu.Unlock()
	now = w.hist.Now()
	if t := w.track[session]; t != nil {
		return now, t.maxAcked, t.inflight == 0
	}
	return now, 0, true
}

// Unexpected counts answers the workload never provokes on purpose.
func (w *Workload) Unexpected() int64 { return w.unexpected.Load() }

// Run runs the clients until ctx is done. Operations in flight finish
// (bounded by the retry deadline) before Run returns.
func (w *Workload) Run(ctx context.Context) {
	var wg sync.WaitGroup
	for i := range w.cfg.Clients {
		wg.Add(1)
		c := &client{w: w, id: i, rnd: rand.New(rand.NewPCG(w.cfg.Seed, uint64(i))), seen: map[string]*view{}}
		go func() { defer wg.Done(); c.loop(ctx) }()
	}
	wg.Wait()
}

// pickNode picks a node at random, avoiding nodes that just failed to
// answer, as a client library with a node list would.
func (w *Workload) pickNode(r *rand.Rand) Node {
	nodes := w.nodes()
	now := time.Now()
	w.suspectMu.Lock()
	var healthy []Node
	for _, n := range nodes {
		if now.After(w.suspect[n.Name]) {
			healthy = append(healthy, n)
		}
	}
	w.suspectMu.Unlock()
	if len(healthy) == 0 {
		healthy = nodes
	}
	return healthy[r.IntN(len(healthy))]
}

func (w *Workload) markSuspect(n Node) {
	w.suspectMu.Lock()
	w.suspect[n.Name] = time.Now().Add(5 * time.Second)
	w.suspectMu.Unlock()
}

// view is what one client last saw of a session.
type view struct {
	version uint64
	count   int
	acked   []string // message ids this client appended and saw acknowledged
}

type client struct {
	w    *Workload
	id   int
	rnd  *rand.Rand
	seen map[string]*view
	n    int // operations started, for unique ids
}

func (c *client) loop(ctx context.Context) {
	for ctx.Err() == nil {
		c.n++
		if c.rnd.IntN(100) < 5 {
			c.deleteSessionOp()
			continue
		}
		c.regularOp()
	}
}

func (c *client) opID() string { return fmt.Sprintf("c%d.%d", c.id, c.n) }

func (c *client) view(session string) *view {
	v := c.seen[session]
	if v == nil {
		v = &view{}
		c.seen[session] = v
		if len(c.seen) > 4*c.w.cfg.Sessions {
			clear(c.seen) // old sessions are retired; forget them
			c.seen[session] = v
		}
	}
	return v
}

// regularOp runs one operation on a session that is never deleted.
func (c *client) regularOp() {
	session := c.w.regular.pick(c.rnd)
	v := c.view(session)
	in := Input{Session: session}
	switch r := c.rnd.IntN(95); {
	case r < 40:
		in.Kind = KindAppend
		in.IDs = []string{c.opID() + "a"}
		if c.rnd.IntN(4) == 0 {
			in.IDs = append(in.IDs, c.opID()+"b")
		}
	case r < 45 && len(v.acked) > 0:
		in.Kind = KindAppend // a deliberate re-append: must return the same seq
		in.IDs = []string{v.acked[c.rnd.IntN(len(v.acked))]}
	case r < 65:
		in.Kind = KindRead
	case r < 70:
		in.Kind = KindPage
		in.After = c.rnd.IntN(v.count + 2)
		in.Limit = 1 + c.rnd.IntN(5)
	case r < 85:
		in.Kind = KindPutField
		in.Field, in.Value = fieldNames[c.rnd.IntN(len(fieldNames))], c.opID()
		if v.version > 0 {
			in.HasIfMatch, in.IfMatch = true, v.version
		}
	case r < 90:
		in.Kind = KindPutField
		in.Field, in.Value = fieldNames[c.rnd.IntN(len(fieldNames))], c.opID()
	case r < 93:
		in.Kind = KindPatch
		set, del := c.rnd.IntN(len(fieldNames)), c.rnd.IntN(len(fieldNames))
		in.Patch = map[string]string{fieldNames[del]: "", fieldNames[set]: c.opID()}
	default:
		in.Kind = KindDeleteField
		in.Field = fieldNames[c.rnd.IntN(len(fieldNames))]
	}
	out := c.run(in)
	if out.Status == StatusOK || out.Status == StatusConflict {
		if out.Version > v.version {
			v.version = out.Version
		}
		if in.Kind == KindRead || in.Kind == KindPage {
			v.count = out.Count
		}
		if in.Kind == KindAppend && out.Status == StatusOK {
			v.acked = append(v.acked, in.IDs...)
			v.count = max(v.count, int(out.Seqs[len(out.Seqs)-1]))
		}
	}
}

// deleteSessionOp runs one operation on a session of the delete pool.
func (c *client) deleteSessionOp() {
	in := Input{Session: c.w.deletes.pick(c.rnd)}
	switch r := c.rnd.IntN(4); r {
	case 0, 1:
		in.Kind, in.IDs = KindAppend, []string{c.opID() + "a"}
	case 2:
		in.Kind = KindRead
	default:
		in.Kind = KindDelete
	}
	c.record(in, true)
}

// run performs one operation and records it.
func (c *client) run(in Input) Output { return c.record(in, false) }

// record performs one operation and records it, with the message ids a
// whole-session read returned when keepIDs is set (the sessions that are
// deleted, whose durability is checked against their reads). Writes are
// retried after a definite failure (nothing happened) until RetryDeadline;
// appends are also retried after an unknown outcome, with the same ids,
// which is safe because appends are idempotent. Conditional and field
// writes never are.
func (c *client) record(in Input, keepIDs bool) Output {
	w := c.w
	w.begin(in.Session)
	op := Op{Client: c.id, Input: in, Call: w.hist.Now()}
	deadline := time.Now().Add(w.cfg.RetryDeadline)
	sawUnknown := false
	var (
		out Output
		r   reply
	)
	for {
		op.Attempts++
		node := w.pickNode(c.rnd)
		op.Node = node.Name
		r = c.send(node, in)
		out = decode(in, r)
		if r.err != nil {
			w.markSuspect(node)
		}
		if sawUnknown && in.Kind == KindAppend && r.status == http.StatusConflict {
			// A retry refused as an id conflict: an earlier attempt stored
			// these ids and the session was deleted since (its ids stay
			// reserved). The append did take effect, before this answer.
			out = Output{Status: StatusUnknown, Applied: true}
			op.Detail = fmt.Sprintf("retry answered %s by %s: the first attempt was applied", r, node.Name)
			break
		}
		if r.unexpected() {
			w.unexpected.Add(1)
			op.Detail = fmt.Sprintf("unexpected %s from %s: %s", r, node.Name, r.body)
			out.Status = StatusFailed
			break
		}
		if out.Status != StatusOK && out.Status != StatusNotFound && out.Status != StatusConflict {
			op.Detail = fmt.Sprintf("%s from %s", r, node.Name)
		}
		if out.Status == StatusUnknown {
			sawUnknown = true
		}
		retry := in.Kind.IsWrite() && (out.Status == StatusFailed || out.Status == StatusUnknown && in.Kind == KindAppend)
		if !retry || time.Now().After(deadline) {
			break
		}
		time.Sleep(time.Duration(50+c.rnd.IntN(150)) * time.Millisecond)
	}
	if out.Status == StatusFailed && sawUnknown && !out.Applied {
		out.Status = StatusUnknown
	}
	if keepIDs && in.Kind == KindRead && out.Status == StatusOK {
		if d, err := parseSession(r.body); err == nil {
			op.Messages = d.IDs
		}
	}
	op.Output = out
	w.done(op)
	return out
}

func sessionPath(session string) string { return api.SessionPath(session) }

func (c *client) send(n Node, in Input) reply {
	ctx := context.Background()
	path := sessionPath(in.Session)
	var ifMatch string
	if in.HasIfMatch {
		ifMatch = strconv.Quote(strconv.FormatUint(in.IfMatch, 10))
	}
	call := func(method, path string, body []byte) reply {
		return do(ctx, c.w.http, n.URL, api.Call{Method: method, Path: path, Body: body, IfMatch: ifMatch})
	}
	switch in.Kind {
	case KindAppend:
		msgs := make([]map[string]string, len(in.IDs))
		for i, id := range in.IDs {
			msgs[i] = map[string]string{"id": id, "role": "user", "content": "message " + id}
		}
		body, _ := json.Marshal(map[string]any{"messages": msgs})
		return call("POST", path+"/messages", body)
	case KindRead:
		return call("GET", path+"?consistency=linearizable", nil)
	case KindPage:
		return call("GET", fmt.Sprintf("%s/messages?consistency=linearizable&after=%d&limit=%d", path, in.After, in.Limit), nil)
	case KindPutField:
		body, _ := json.Marshal(in.Value)
		return call("PUT", path+"/state/"+in.Field, body)
	case KindDeleteField:
		return call("DELETE", path+"/state/"+in.Field, nil)
	case KindPatch:
		patch := map[string]any{}
		for k, v := range in.Patch {
			if v == "" {
				patch[k] = nil
			} else {
				patch[k] = v
			}
		}
		body, _ := json.Marshal(patch)
		return do(ctx, c.w.http, n.URL, api.Call{Method: "PATCH", Path: path, Body: body, IfMatch: ifMatch,
			ContentType: "application/merge-patch+json"})
	case KindDelete:
		return call("DELETE", path, nil)
	}
	return reply{err: fmt.Errorf("unknown kind %d", in.Kind)}
}

// decode turns a reply into the model's Output.
func decode(in Input, r reply) Output {
	out := Output{Status: r.outcome(), Version: r.etag}
	if out.Status != StatusOK {
		if !in.Kind.IsWrite() && out.Status == StatusUnknown {
			out.Status = StatusFailed // a read that got no answer did nothing
		}
		return out
	}
	switch in.Kind {
	case KindAppend:
		var resp struct {
			Messages []wireMessage `json:"messages"`
			Version  uint64        `json:"version"`
		}
		if json.Unmarshal(r.body, &resp) != nil || len(resp.Messages) != len(in.IDs) {
			return Output{Status: StatusUnknown}
		}
		out.Version = resp.Version
		for _, m := range resp.Messages {
			out.Seqs = append(out.Seqs, m.Seq)
		}
	case KindRead:
		d, err := parseSession(r.body)
		if err != nil {
			return Output{Status: StatusFailed}
		}
		out = d.output()
	case KindPage:
		var resp struct {
			Messages []wireMessage `json:"messages"`
			Version  uint64        `json:"version"`
			Total    int           `json:"total"`
		}
		if json.Unmarshal(r.body, &resp) != nil {
			return Output{Status: StatusFailed}
		}
		out.Version, out.Count, out.PageLen = resp.Version, resp.Total, len(resp.Messages)
		ids := make([]string, len(resp.Messages))
		for i, m := range resp.Messages {
			ids[i] = m.ID
		}
		out.PageHash = DigestIDs(ids)
	}
	return out
}
