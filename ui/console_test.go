package ui_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
)

// browser is a headless Chromium driven over the DevTools protocol, with
// every JavaScript dialog and uncaught exception of its pages recorded: the
// console opens no alert (an injected onerror=alert would) and throws none.
type browser struct {
	t     *testing.T
	ctx   context.Context
	shots string

	mu       sync.Mutex
	problems []string
}

// chromiumPath finds Debian's chromium (what .ci/run installs) or Chrome.
func chromiumPath(t *testing.T) string {
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Fatal("the console's browser test needs Chromium: apt-get install -y chromium (.ci/run does)")
	return ""
}

func newBrowser(t *testing.T) *browser {
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromiumPath(t)), chromedp.NoSandbox, chromedp.WindowSize(1280, 800),
		chromedp.Flag("disable-dev-shm-usage", true))
	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(alloc)
	t.Cleanup(func() { cancel(); cancelAlloc() })
	shots := os.Getenv("SESSIOND_CONSOLE_SCREENSHOTS")
	if shots == "" {
		shots = t.TempDir()
	} else if err := os.MkdirAll(shots, 0o755); err != nil {
		t.Fatal(err)
	}
	b := &browser{t: t, ctx: ctx, shots: shots}
	if err := chromedp.Listen(ctx, func(ev any) {
		switch e := ev.(type) {
		case *page.EventJavascriptDialogOpening:
			b.problem("a JavaScript dialog opened: %q", e.Message)
		case *runtime.EventExceptionThrown:
			d := e.ExceptionDetails
			msg := d.Text
			if d.Exception != nil {
				msg += " " + d.Exception.Description
			}
			b.problem("uncaught exception at %s:%d: %s", d.URL, d.LineNumber, msg)
		}
	}); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	if err := chromedp.Do(ctx, chromedp.EmulateViewport(1280, 800)); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	return b
}

func (b *browser) problem(format string, args ...any) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.problems = append(b.problems, fmt.Sprintf(format, args...))
}

// noProblems fails the test if the page opened a dialog or threw.
func (b *browser) noProblems() {
	b.t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.problems) > 0 {
		b.t.Fatalf("the page misbehaved:\n%s", strings.Join(b.problems, "\n"))
	}
}

// do runs steps, failing the test (with a screenshot) on an error.
func (b *browser) do(what string, steps ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 90*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		b.screenshot("failed")
		b.t.Fatalf("%s: %v", what, err)
	}
}

// waitJS waits until the JavaScript expression is true on the page. It
// evaluates it again and again rather than once in the page, so that it
// carries on across the page moving to another node.
func (b *browser) waitJS(what, expr string) {
	b.t.Helper()
	deadline := time.Now().Add(90 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(b.ctx, 10*time.Second)
		ok, err := chromedp.Run(ctx, chromedp.Evaluate[bool]("!!("+expr+")"))
		cancel()
		if err == nil && ok {
			return
		}
		if time.Now().After(deadline) {
			b.screenshot("failed")
			b.t.Fatalf("%s: not within 90s (last error %v)", what, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// eval returns the value of a JavaScript expression.
func eval[T any](b *browser, expr string) T {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr))
	if err != nil {
		b.t.Fatalf("evaluate %s: %v", expr, err)
	}
	return v
}

// screenshot saves the viewport as NAME.png.
func (b *browser) screenshot(name string) {
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
	if err != nil {
		b.t.Errorf("screenshot %s: %v", name, err)
		return
	}
	path := filepath.Join(b.shots, name+".png")
	if err := os.WriteFile(path, png, 0o644); err != nil {
		b.t.Errorf("screenshot %s: %v", name, err)
		return
	}
	b.t.Logf("screenshot %s", path)
}

// enterToken types a token into the page's token form and submits it with
// the keyboard.
func (b *browser) enterToken(token string) {
	b.t.Helper()
	b.do("enter a token",
		chromedp.WaitVisible("#token-input"),
		chromedp.SendKeys("#token-input", token+kb.Enter))
}

// js quotes s as a JavaScript string literal.
func js(s string) string {
	q, _ := json.Marshal(s)
	return string(q)
}

const hiddenAttack = `<img src=x onerror=alert(1)>`

// The console served by any node shows the whole cluster, runs a
// leadership transfer it was asked for, shows sessions with
// attacker-controlled content as text, marks a killed node dead, and moves
// to another member when the node that served it is drained through it —
// in a real browser against a real 3-node cluster that requires tokens.
func TestConsoleShowsClusterRunsOperationsAndSurvivesNodeLoss(t *testing.T) {
	const shards = 16
	members := startMembers(t, 3, shards)
	b := newBrowser(t)

	// A token is asked for; a read token shows the cluster but no operations.
	b.do("open the console", chromedp.Navigate(members[0].url+"/ui/"))
	b.enterToken(readToken)
	b.waitJS("three members, all alive and answering", `
		[...document.querySelectorAll('#members tbody tr')].filter(r =>
			r.querySelector('.state').textContent === 'alive' && r.children[2].textContent === 'yes').length === 3`)
	b.waitJS("16 shards, each with a leader cell in the grid and 3 replicas", `
		[...document.querySelectorAll('#grid tbody tr')].filter(r =>
			r.querySelectorAll('td.cell.leader').length === 1 && r.querySelectorAll('td.cell.voter').length === 2).length === 16`)
	b.waitJS("the summary", `document.getElementById('converged').textContent === '16/16 shards converged'`)
	if n := eval[int](b, `document.querySelectorAll('button.transfer, button.drain').length`); n != 0 {
		t.Fatalf("a read token sees %d operation buttons, want none", n)
	}

	// An admin token shows the operations.
	b.do("change the token", chromedp.Click("#token-button"))
	b.enterToken(adminToken)
	b.waitJS("operation buttons", `document.querySelectorAll('button.transfer').length === 16 &&
		document.querySelectorAll('button.drain').length === 3`)
	b.waitJS("sparklines of every node", `document.querySelectorAll('#sparks svg').length === 6`)
	b.screenshot("cluster")

	// Transfer a shard's leadership through the page, keyboard only: from
	// the node leading most shards to the one leading fewest, so the
	// balancer has no reason to move it back.
	var view clusterView
	if err := getJSON(members[1].url+"/v1/cluster", readToken, &view); err != nil {
		t.Fatal(err)
	}
	from, to := busiestAndIdlest(view.Summary.LeadersPerNode)
	var sh uint32
	for _, s := range view.Shards {
		if s.Leader == from {
			sh = s.ID
			break
		}
	}
	row := fmt.Sprintf(`#grid tr[data-shard="%d"]`, sh)
	b.waitJS("the grid shows the old leader", fmt.Sprintf(`document.querySelector('%s td.leader-name').textContent === %s`, row, js(from)))
	b.do("ask for the transfer",
		chromedp.Focus(fmt.Sprintf(`button.transfer[data-shard="%d"]`, sh)),
		chromedp.KeyEvent(kb.Enter),
		chromedp.WaitVisible("#confirm-select"),
		chromedp.SetValue("#confirm-select", to),
		chromedp.Focus("#confirm-ok"),
		chromedp.KeyEvent(kb.Enter))
	b.waitJS("the grid shows the new leader", fmt.Sprintf(`document.querySelector('%s td.leader-name').textContent === %s &&
		document.querySelector('%s td.cell.leader').dataset.node === %s`, row, js(to), row, js(to)))

	// A session written through the API, attacker's markup included, is
	// shown as text.
	id := "console:demo@1"
	sess := members[1].url + "/api/chat/session/" + url.PathEscape(id)
	mustCall(t, http.MethodPost, sess+"/messages", `{"id":"m1","role":"user","content":`+js(hiddenAttack)+`}`, http.StatusCreated)
	mustCall(t, http.MethodPost, sess+"/messages", `{"id":"m2","role":"assistant","content":"Which dates?\nAny time in May."}`, http.StatusCreated)
	mustCall(t, http.MethodPut, sess, `{"note":"<script>alert(2)</script>","search":{"to":"LIS","pax":2}}`, http.StatusOK)
	b.do("open the session by id",
		chromedp.Click("#tab-sessions"),
		chromedp.WaitVisible("#session-id"),
		chromedp.SendKeys("#session-id", id+kb.Enter))
	b.waitJS("the attacker's message as text", fmt.Sprintf(
		`document.querySelector('#messages li[data-seq="1"] .content')?.textContent === %s`, js(hiddenAttack)))
	b.waitJS("the owner and version", `[...document.querySelectorAll('#session-meta dt')].map(d => d.textContent).join() === 'Shard,Leader,Replicas,Version,Messages'`)
	if got := eval[string](b, `document.getElementById('session-fields').textContent`); !strings.Contains(got, `"note": "<script>alert(2)</script>"`) || !strings.Contains(got, `"pax": 2`) {
		t.Fatalf("fields shown as %q", got)
	}
	if n := eval[int](b, `document.querySelectorAll('#session img, #session script, #session b').length`); n != 0 {
		t.Fatalf("the session's values became %d HTML elements", n)
	}
	b.do("list sessions by prefix", chromedp.SendKeys("#prefix", "console:"+kb.Enter))
	b.waitJS("the session in the list", fmt.Sprintf(
		`[...document.querySelectorAll('#session-list a.session-link')].map(a => a.textContent).join() === %s`, js(id)))
	b.do("follow the session", chromedp.Click("#follow"))
	b.waitJS("the stream", `document.getElementById('follow-state').textContent === 'following live changes'`)
	mustCall(t, http.MethodPost, sess+"/messages", `{"id":"m3","role":"user","content":"May 3-7"}`, http.StatusCreated)
	b.waitJS("the new message, live", `document.querySelector('#messages li[data-seq="3"] .content')?.textContent === 'May 3-7'`)
	b.screenshot("session")

	// Narrow windows scroll the wide tables inside their boxes, not the page.
	b.do("narrow the window", chromedp.EmulateViewport(390, 844))
	b.waitJS("no sideways scrolling of the session view", `document.documentElement.scrollWidth <= window.innerWidth`)
	b.screenshot("session-narrow")
	b.do("show the cluster", chromedp.Click("#tab-cluster"))
	b.waitJS("no sideways scrolling of the cluster view", `document.querySelector('#grid tbody tr') !== null && document.documentElement.scrollWidth <= window.innerWidth`)
	b.screenshot("cluster-narrow")
	b.do("widen the window", chromedp.EmulateViewport(1280, 800))

	// A killed node is marked dead.
	members[2].kill()
	b.waitJS("n3 dead", `document.querySelector('#members tr[data-node="n3"] .state')?.textContent === 'dead' &&
		document.querySelector('#members tr[data-node="n3"]').children[2].textContent.startsWith('no')`)
	b.screenshot("node-dead")

	// Draining the node that serves the page, through the page: it moves
	// to another member (a new origin, so it asks for the token again).
	b.do("drain n1",
		chromedp.Focus(`button.drain[data-node="n1"]`),
		chromedp.KeyEvent(kb.Enter),
		chromedp.WaitVisible("#confirm-ok"),
		chromedp.Focus("#confirm-ok"),
		chromedp.KeyEvent(kb.Enter))
	n2, _ := url.Parse(members[1].url)
	b.waitJS("the page to move to n2", fmt.Sprintf(`location.host === %s`, js(n2.Host)))
	b.enterToken(adminToken)
	b.waitJS("served by n2", `document.getElementById('served-by').textContent.startsWith('served by n2')`)
	b.waitJS("n1 gone, leading nothing", `
		['left', 'dead'].includes(document.querySelector('#members tr[data-node="n1"] .state')?.textContent) &&
		document.querySelectorAll('#grid tbody tr').length === 16 &&
		[...document.querySelectorAll('#grid td.leader-name')].every(td => td.textContent !== 'n1')`)
	b.screenshot("drained")
	b.noProblems()
}

func busiestAndIdlest(leaders map[string]int) (busiest, idlest string) {
	for _, n := range []string{"n1", "n2", "n3"} {
		if busiest == "" || leaders[n] > leaders[busiest] {
			busiest = n
		}
		if idlest == "" || leaders[n] < leaders[idlest] {
			idlest = n
		}
	}
	return busiest, idlest
}

func mustCall(t *testing.T, method, url, body string, want int) {
	t.Helper()
	if _, err := call(method, url, dataToken, body, want); err != nil {
		t.Fatal(err)
	}
}
