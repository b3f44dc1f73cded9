package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sessiond/sessiond/internal/baseurl"
)

// run executes one command line in-process and returns its exit status and
// output.
func run(t *testing.T, stdin string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	a := &app{stdin: strings.NewReader(stdin), stdout: &out, stderr: &errb, pollEvery: 10 * time.Millisecond}
	code = a.main(args, func(string) string { return "" })
	return code, out.String(), errb.String()
}

// fakeNode is an httptest server that answers /v1/cluster with a view the
// test may change, and routes everything else to other.
type fakeNode struct {
	srv   *httptest.Server
	mu    sync.Mutex
	view  clusterView
	other http.HandlerFunc
	// polls counts /v1/cluster requests; onPoll may change the view first.
	polls  int
	onPoll func(v *clusterView, n int)
}

func newFakeNode(t *testing.T, id string) *fakeNode {
	f := &fakeNode{view: clusterView{Node: id, ShardCount: 3, Ready: true}}
	f.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/v1/cluster" {
			f.mu.Lock()
			defer f.mu.Unlock()
			f.polls++
			if f.onPoll != nil {
				f.onPoll(&f.view, f.polls)
			}
			_ = json.NewEncoder(w).Encode(f.view)
			return
		}
		if f.other != nil {
			f.other(w, r)
			return
		}
		apiErr(w, 404, "not_found", "no such route")
	}))
	t.Cleanup(f.srv.Close)
	return f
}

func newTestFlagSet() *flag.FlagSet {
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	return fs
}

func (f *fakeNode) host() string { return strings.TrimPrefix(f.srv.URL, "http://") }

func (f *fakeNode) set(fn func(v *clusterView)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fn(&f.view)
}

func apiErr(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	fmt.Fprintf(w, `{"error":{"code":%q,"message":%q}}`+"\n", code, msg)
}

// deadAddr is an address nothing listens on.
func deadAddr(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

func voters(ids ...string) []replica {
	var out []replica
	for _, id := range ids {
		out = append(out, replica{ID: id, Suffrage: "voter"})
	}
	return out
}

// threeNodes builds n1 (queried), n2 (answers) and n3 (listed alive, but
// unreachable). Shard 0 is led by n2, and n1 still holds a stale view of an
// older term claiming n1 leads; shard 1 is led by n1 and mid-move; shard 2
// lives only on n3, so nobody answering holds it.
func threeNodes(t *testing.T) (n1, n2 *fakeNode, n3addr string) {
	n1, n2, n3addr = newFakeNode(t, "n1"), newFakeNode(t, "n2"), deadAddr(t)
	members := []memberStatus{
		{ID: "n1", State: "alive", HTTPAddr: n1.host(), Replicas: 9, Leading: 9}, // gossip, stale
		{ID: "n2", State: "alive", HTTPAddr: n2.host(), Replicas: 9, Leading: 9},
		{ID: "n3", State: "alive", HTTPAddr: n3addr, Replicas: 1, Leading: 1},
		{ID: "n9", State: "dead", HTTPAddr: deadAddr(t)},
	}
	n1.set(func(v *clusterView) {
		v.Members = append([]memberStatus{}, members...)
		v.Members[0].Replicas, v.Members[0].Leading = 2, 1 // exact self
		v.Shards = []shardView{
			{ID: 0, State: "Follower", Leader: "n1", Term: 2, AppliedIndex: 5, Local: true, Replicas: voters("n1", "n2"), Desired: []string{"n1", "n2"}, Converged: true},
			{ID: 1, State: "Leader", Leader: "n1", Term: 4, Local: true, Replicas: append(voters("n1", "n2"), replica{ID: "n3", Suffrage: "nonvoter"}), Desired: []string{"n1", "n3"},
				Move: &move{Shard: 1, From: "n2", To: "n3", Step: "catching-up"}},
			{ID: 2, Leader: "n3", Replicas: []replica{}, Desired: []string{"n3"}},
		}
	})
	n2.set(func(v *clusterView) {
		v.Members = append([]memberStatus{}, members...)
		v.Members[1].Replicas, v.Members[1].Leading = 2, 1
		v.Shards = []shardView{
			{ID: 0, State: "Leader", Leader: "n2", Term: 3, AppliedIndex: 7, Local: true, Replicas: voters("n1", "n2"), Desired: []string{"n1", "n2"}, Converged: true},
			{ID: 1, State: "Follower", Leader: "n1", Term: 4, Local: true, Replicas: voters("n1", "n2"), Desired: []string{"n1", "n3"}},
			{ID: 2, Leader: "n3", Replicas: []replica{}, Desired: []string{"n3"}},
		}
	})
	return n1, n2, n3addr
}

func TestStatusMergeJSON(t *testing.T) {
	n1, _, n3addr := threeNodes(t)
	code, out, errOut := run(t, "", "--addr", n1.srv.URL, "status", "-o", "json")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	var mv mergedView
	if err := json.Unmarshal([]byte(out), &mv); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if mv.Via != "n1" || mv.ShardCount != 3 || len(mv.Shards) != 3 {
		t.Fatalf("via %q, %d shards of %d", mv.Via, len(mv.Shards), mv.ShardCount)
	}
	if s := mv.Shards[0]; s.Leader != "n2" || s.Source != "n2" || s.Term != 3 || s.AppliedIndex != 7 {
		t.Errorf("shard 0 should come from its leader n2: %+v", s)
	}
	if s := mv.Shards[1]; s.Source != "n1" || s.Move == nil || s.Move.To != "n3" || s.Converged {
		t.Errorf("shard 1 should be n1's leader view with its move: %+v", s)
	}
	if s := mv.Shards[2]; s.Local || s.Leader != "n3" {
		t.Errorf("shard 2 should be the gossip view: %+v", s)
	}
	want := summary{ShardsSeen: 2, ShardsConverged: 1, MovesInFlight: 1, LeadersPerNode: map[string]int{"n1": 1, "n2": 1, "n3": 1}}
	if fmt.Sprint(mv.Summary) != fmt.Sprint(want) {
		t.Errorf("summary %+v, want %+v", mv.Summary, want)
	}
	// Each member's own entry wins; n3 did not answer, so gossip stays.
	got := map[string][2]int{}
	for _, m := range mv.Members {
		got[m.ID] = [2]int{m.Replicas, m.Leading}
	}
	if got["n1"] != [2]int{2, 1} || got["n2"] != [2]int{2, 1} || got["n3"] != [2]int{1, 1} {
		t.Errorf("member counts %v", got)
	}
	var n3 *nodeReport
	for i, r := range mv.Nodes {
		if r.Node == "n9" {
			t.Errorf("a dead member was queried: %+v", r)
		}
		if r.Node == "n3" {
			n3 = &mv.Nodes[i]
		}
	}
	if n3 == nil || !strings.Contains(n3.Error, "connection refused") || !strings.Contains(n3.Addr, n3addr) {
		t.Errorf("n3 should be reported unreachable: %+v", mv.Nodes)
	}
}

func TestStatusText(t *testing.T) {
	n1, _, _ := threeNodes(t)
	code, out, errOut := run(t, "", "status", "--addr", n1.host())
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	for _, want := range []string{
		"shards converged 1/3, moves in flight 1 (1 shard not seen by any answering replica)",
		"leaders per node: n1=1 n2=1 n3=1",
		"warning: n3 (",
		"MEMBER  STATE  HTTP",
		"n2->n3 catching-up",
		"n3(nonvoter)",
		"n1(gossip)",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	code, out, _ = run(t, "", "--addr", n1.host(), "-o", "json", "members")
	var members []memberStatus
	if code != 0 || json.Unmarshal([]byte(out), &members) != nil || len(members) != 4 {
		t.Errorf("members -o json: exit %d\n%s", code, out)
	}
	code, out, _ = run(t, "", "--addr", n1.host(), "shards")
	if code != 0 || strings.Count(out, "\n") != 4 || !strings.HasPrefix(out, "SHARD") {
		t.Errorf("shards: exit %d\n%s", code, out)
	}
}

func TestNormalizeAddr(t *testing.T) {
	for in, want := range map[string]string{
		"127.0.0.1:8080":          "http://127.0.0.1:8080",
		" localhost:1 ":           "http://localhost:1",
		":9000":                   "http://127.0.0.1:9000",
		"http://h:1/":             "http://h:1",
		"https://h/prefix/":       "https://h/prefix",
		"http://[::1]:8080":       "http://[::1]:8080",
		"ftp://h:1":               "",
		"http://":                 "",
		"http://h:1/?x=1":         "",
		"http://user:pw@h:1/path": "",
	} {
		got, err := baseurl.Parse(in)
		if (err != nil) != (want == "") || got != want {
			t.Errorf("baseurl.Parse(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
}

func TestUnreachableAndFailover(t *testing.T) {
	dead := deadAddr(t)
	code, _, errOut := run(t, "", "--addr", dead, "owner", "s1")
	want := "sessionctl: cannot reach sessiond at http://" + dead + ": connection refused (set --addr or SESSIOND_ADDR)\n"
	if code != 1 || errOut != want {
		t.Errorf("exit %d, stderr %q; want %q", code, errOut, want)
	}
	if code, out, _ := run(t, "", "--addr", dead, "-o", "json", "status"); code != 1 || out != "" {
		t.Errorf("status -o json of a dead cluster: exit %d, stdout %q", code, out)
	}
	n := newFakeNode(t, "n1")
	n.other = func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, `{"session":"s1","shard":2,"leader":"n1","replicas":["n1","n2"]}`)
	}
	code, out, errOut := run(t, "", "--addr", dead+","+n.srv.URL, "owner", "s1")
	if code != 0 || !strings.Contains(out, "leader    n1") || !strings.Contains(out, "replicas  n1,n2") {
		t.Errorf("failover: exit %d\n%s%s", code, out, errOut)
	}
}

func TestAPIErrorDecoding(t *testing.T) {
	n := newFakeNode(t, "n1")
	n.other = func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/api/chat/session/html" {
			w.WriteHeader(502)
			fmt.Fprint(w, "<html>bad gateway</html>")
			return
		}
		apiErr(w, 404, "session_not_found", `session "x" not found`)
	}
	code, _, errOut := run(t, "", "--addr", n.srv.URL, "get", "x")
	want := `sessionctl: session_not_found: session "x" not found (HTTP 404 from ` + n.srv.URL + ")\n"
	if code != 1 || errOut != want {
		t.Errorf("exit %d, stderr %q; want %q", code, errOut, want)
	}
	code, _, errOut = run(t, "", "--addr", n.srv.URL, "get", "html")
	want = "sessionctl: http_502: <html>bad gateway</html> (HTTP 502 from " + n.srv.URL + ")\n"
	if code != 1 || errOut != want {
		t.Errorf("a non-JSON error: exit %d, stderr %q; want %q", code, errOut, want)
	}
}

// A PUT whose connection fails after it was sent must not be retried on
// the next address: it may have been applied.
func TestWriteNotRetriedAfterSend(t *testing.T) {
	var hits atomic.Int32
	slow := newFakeNode(t, "n1")
	slow.other = func(w http.ResponseWriter, r *http.Request) { time.Sleep(300 * time.Millisecond) }
	other := newFakeNode(t, "n2")
	other.other = func(w http.ResponseWriter, r *http.Request) { hits.Add(1) }
	code, _, errOut := run(t, "", "--addr", slow.srv.URL+","+other.srv.URL, "--timeout", "50ms", "put", "s", `{"step":1}`)
	if code != 1 || !strings.Contains(errOut, "may or may not have been applied") || hits.Load() != 0 {
		t.Errorf("exit %d, second node hit %d times: %s", code, hits.Load(), errOut)
	}
}

func TestSessionCommands(t *testing.T) {
	n := newFakeNode(t, "n1")
	var got []string
	var mu sync.Mutex
	n.other = func(w http.ResponseWriter, r *http.Request) {
		var body bytes.Buffer
		_, _ = body.ReadFrom(r.Body)
		mu.Lock()
		got = append(got, r.Method+" "+r.URL.RequestURI()+" "+body.String())
		mu.Unlock()
		switch {
		case r.Method == "POST" && strings.HasSuffix(r.URL.Path, "/messages"):
			w.WriteHeader(201)
			fmt.Fprint(w, `{"messages":[{"seq":3,"id":"m1","role":"user","content":"hi there","createdAt":1}],"version":42}`)
		case r.Method == "POST":
			fmt.Fprint(w, `{"shard":0,"leader":"n2"}`)
		default:
			fmt.Fprint(w, `{"id":"s1","version":42,"messages":[],"z":1,"a":2}`)
		}
	}
	a := "--addr=" + n.srv.URL
	if code, out, e := run(t, "", a, "append", "s1", "user", "hi there", "--id", "m1"); code != 0 ||
		!strings.Contains(out, "message seq 3 stored") || !strings.Contains(out, "version 42") {
		t.Errorf("append: %d %s %s", code, out, e)
	}
	if code, out, _ := run(t, "", a, "get", "s1", "--consistency", "stale"); code != 0 || !strings.Contains(out, "  \"z\": 1,\n  \"a\": 2\n") {
		t.Errorf("get should pretty-print keeping key order: %d\n%s", code, out)
	}
	if code, _, e := run(t, `{"step":"x"}`, a, "put", "s1", "-"); code != 0 {
		t.Errorf("put: %d %s", code, e)
	}
	if code, out, _ := run(t, "", a, "transfer", "0", "n2"); code != 0 || out != "shard 0: leader n2\n" {
		t.Errorf("transfer: %d %q", code, out)
	}
	want := []string{
		`POST /api/chat/session/s1/messages {"messages":[{"id":"m1","role":"user","content":"hi there"}]}`,
		`GET /api/chat/session/s1?consistency=stale `,
		`PUT /api/chat/session/s1 {"step":"x"}`,
		`POST /v1/shards/0/transfer-leadership?to=n2 `,
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("requests:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestArgumentValidation(t *testing.T) {
	for _, args := range [][]string{
		{},
		{"nosuch"},
		{"--bogus", "status"},
		{"status", "extra"},
		{"status", "-o", "yaml"},
		{"status", "--timeout", "0s"},
		{"owner"},
		{"owner", ""},
		{"get", "a", "b"},
		{"get", "a", "--consistency", "strong"},
		{"append", "s", "user"},
		{"append", "s", "", "text"},
		{"put", "s", "{not json"},
		{"put", "s", "[1,2]"},
		{"transfer"},
		{"transfer", "-1"},
		{"transfer", "x", "n1"},
		{"transfer", "1", "n1", "n2"},
		{"drain"},
		{"drain", "n1", "--wait-timeout", "0s"},
		{"--addr", "ftp://x", "status"},
	} {
		if code, _, errOut := run(t, "", append([]string{"--addr", deadAddr(t)}, args...)...); code != 2 || errOut == "" {
			t.Errorf("%q: exit %d, want 2 with a message; stderr %q", args, code, errOut)
		}
	}
	for _, args := range [][]string{{"help"}, {"-h"}, {"help", "drain"}, {"drain", "-h"}} {
		if code, out, _ := run(t, "", args...); code != 0 || !strings.Contains(out, "Usage: sessionctl") {
			t.Errorf("%q: exit %d\n%s", args, code, out)
		}
	}
	// "--" ends the flags, so a message may start with "-".
	a := &app{stdout: &bytes.Buffer{}, output: "text", timeout: time.Second}
	fs := newTestFlagSet()
	id := fs.String("id", "", "")
	pos, err := a.parse(fs, []string{"s1", "--id", "m", "user", "--", "-x", "--id"}, 4, 4)
	if err != nil || strings.Join(pos, "|") != "s1|user|-x|--id" || *id != "m" {
		t.Errorf("parse: %q %v id=%q", pos, err, *id)
	}
}
