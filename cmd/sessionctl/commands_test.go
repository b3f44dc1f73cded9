package main

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/sessiond/sessiond/internal/testnode"
	buildversion "github.com/sessiond/sessiond/internal/version"
)

func TestSessionCommandsAgainstARealNode(t *testing.T) {
	n := testnode.Start(t, testnode.Options{})[0]
	addr := "--addr=" + n.URL
	for i, text := range []string{"first", "second", "third"} {
		if code, _, e := run(t, "", addr, "append", "s1", "user", text, "--id", "m"+string(rune('1'+i))); code != 0 {
			t.Fatalf("append: %d %s", code, e)
		}
	}
	code, out, e := run(t, "", addr, "messages", "s1", "--limit", "2")
	if code != 0 || !strings.Contains(out, "SEQ  ID  ROLE") || !strings.Contains(out, "second") || strings.Contains(out, "third") ||
		!strings.Contains(out, "2 of 3 messages") || !strings.Contains(out, "more after 2: sessionctl messages s1 --after 2") {
		t.Fatalf("messages --limit 2: %d %s\n%s", code, e, out)
	}
	code, out, _ = run(t, "", addr, "-o", "json", "messages", "s1", "--limit", "1", "--all")
	var page struct {
		Messages []struct{ Seq int } `json:"messages"`
		HasMore  bool                `json:"hasMore"`
	}
	if code != 0 || json.Unmarshal([]byte(out), &page) != nil || len(page.Messages) != 3 || page.HasMore {
		t.Fatalf("messages --all: %d\n%s", code, out)
	}

	if code, _, e := run(t, "", addr, "put", "s1", `{"step":"search","keep":1}`); code != 0 {
		t.Fatalf("put: %d %s", code, e)
	}
	code, out, _ = run(t, "", addr, "patch", "s1", `{"step":null,"to":"LIS"}`)
	if code != 0 || strings.Contains(out, `"step"`) || !strings.Contains(out, `"to": "LIS"`) || !strings.Contains(out, `"keep": 1`) {
		t.Fatalf("patch: %d\n%s", code, out)
	}
	// A stale condition is refused with the server's code and changes nothing.
	code, _, e = run(t, "", addr, "patch", "s1", `{"to":"OPO"}`, "--if-version", "1")
	if code != 1 || !strings.Contains(e, "version_mismatch") {
		t.Fatalf("patch --if-version 1: %d %s", code, e)
	}
	if code, _, e := run(t, "", addr, "put", "s1", `{"to":"OPO"}`, "--if-absent"); code != 1 || !strings.Contains(e, "version_mismatch") {
		t.Fatalf("put --if-absent on an existing session: %d %s", code, e)
	}
	if code, out, e := run(t, "", addr, "delete", "s1", "--field", "keep"); code != 0 || out != "s1: field keep deleted\n" {
		t.Fatalf("delete --field: %d %q %s", code, out, e)
	}
	if code, out, e := run(t, "", addr, "delete", "s1"); code != 0 || out != "s1 deleted\n" {
		t.Fatalf("delete: %d %q %s", code, out, e)
	}
	if code, _, e := run(t, "", addr, "get", "s1"); code != 1 || !strings.Contains(e, "session_not_found") {
		t.Fatalf("get after delete: %d %s", code, e)
	}
	if code, _, e := run(t, "", addr, "delete", "s1"); code != 1 || !strings.Contains(e, "session_not_found") {
		t.Fatalf("delete of a deleted session: %d %s", code, e)
	}
}

func TestVersionNamesTheClientAndEveryNode(t *testing.T) {
	nodes := testnode.Start(t, testnode.Options{Nodes: 3, Shards: 1})
	code, out, e := run(t, "", "--addr", nodes[1].URL, "version")
	if code != 0 || !strings.HasPrefix(out, "sessionctl "+buildversion.String("")+"\n") {
		t.Fatalf("version: %d %s\n%s", code, e, out)
	}
	lines := map[string]bool{}
	for _, l := range strings.Split(out, "\n") {
		lines[strings.Join(strings.Fields(l), " ")] = true
	}
	for _, n := range nodes {
		if !lines[n.ID+" test "+n.URL] {
			t.Errorf("version lacks the line %q:\n%s", n.ID+" test "+n.URL, out)
		}
	}
	code, out, _ = run(t, "", "--addr", deadAddr(t), "version")
	if code != 1 || !strings.HasPrefix(out, "sessionctl ") {
		t.Fatalf("version with no node up: %d %q; want the client's version and exit 1", code, out)
	}
}

func TestStatusWatchRefreshesUntilItsCount(t *testing.T) {
	n := testnode.Start(t, testnode.Options{})[0]
	code, out, e := run(t, "", "--addr", n.URL, "status", "--watch", "--interval", "10ms", "--count", "3")
	if code != 0 || strings.Count(out, "cluster via n1") != 3 || strings.Count(out, "(every 10ms, Ctrl-C to stop)") != 3 {
		t.Fatalf("status --watch --count 3: %d %s\n%s", code, e, out)
	}
	code, out, _ = run(t, "", "--addr", deadAddr(t), "status", "--watch", "--interval", "10ms", "--count", "2")
	if code != 0 || strings.Count(out, "no answer: cannot reach sessiond") != 2 {
		t.Fatalf("status --watch of a dead node keeps watching: %d\n%s", code, out)
	}
}

func TestHelpShowsFlagsInTheirDoubleDashForm(t *testing.T) {
	code, out, _ := run(t, "", "help", "messages")
	if code != 0 || !strings.Contains(out, "  --limit int\n") || !strings.Contains(out, "  --wait duration\n") || strings.Contains(out, "\n  -limit") {
		t.Fatalf("help messages: %d\n%s", code, out)
	}
	if strings.Contains(out, "--addr string") {
		t.Fatalf("a command's help repeats the global flags:\n%s", out)
	}
	code, out, _ = run(t, "", "help")
	for _, want := range []string{"delete ID", "patch ID JSON", "messages ID", "version", "--token T"} {
		if code != 0 || !strings.Contains(out, want) {
			t.Errorf("help lacks %q:\n%s", want, out)
		}
	}
}
