//go:build e2e

package e2e

// The HTTP side: one client, responses classified into the outcomes the
// workload counts, and the /v1/cluster view used to find leaders and to wait
// for replicas to converge.

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"sort"
	"strings"
	"sync"
	"time"

	sdclient "github.com/sessiond/sessiond/client"
	"github.com/sessiond/sessiond/internal/clientauth"
)

// requestTimeout bounds every request; a write that times out is retried
// with the same message id.
const requestTimeout = 4 * time.Second

var (
	// creds are what the suite presents: the CA that signed the nodes'
	// certificates (SESSIOND_CA) and the admin token (SESSIOND_TOKEN).
	creds clientauth.Options
	// routes sends each request through the transport for its host.
	routes = &hostRoutes{byHost: map[string]http.RoundTripper{}}
)

// setupClient loads the credentials from the environment; every request
// of the suite presents them.
func setupClient() error {
	creds = clientauth.FromEnv(os.Getenv)
	rt, err := creds.Apply(newTransport())
	if err != nil {
		return err
	}
	routes.mu.Lock()
	routes.def = rt
	routes.mu.Unlock()
	return nil
}

func newTransport() *http.Transport {
	return &http.Transport{
		DialContext:         (&net.Dialer{Timeout: 2 * time.Second}).DialContext,
		TLSHandshakeTimeout: 2 * time.Second,
		MaxIdleConns:        512,
		MaxIdleConnsPerHost: 128,
		IdleConnTimeout:     30 * time.Second,
	}
}

// reachAs makes requests to hostport verify the node's certificate for
// name instead of for hostport's host. A container reached by its IP on a
// network of the test's own has a certificate that names the node, not
// the IP; the chain must still come from the cluster CA.
func reachAs(hostport, name string) error {
	tr := newTransport()
	rt, err := creds.Apply(tr)
	if err != nil {
		return err
	}
	if tr.TLSClientConfig == nil { // no --ca: the system's roots
		tr.TLSClientConfig = &tls.Config{MinVersion: tls.VersionTLS12}
	}
	tr.TLSClientConfig.ServerName = name
	routes.mu.Lock()
	routes.byHost[hostport] = rt
	routes.mu.Unlock()
	return nil
}

// hostRoutes is a round tripper that picks a transport by the request's
// host: the one reachAs set for it, else the default.
type hostRoutes struct {
	mu     sync.RWMutex
	def    http.RoundTripper
	byHost map[string]http.RoundTripper
}

func (h *hostRoutes) RoundTrip(r *http.Request) (*http.Response, error) {
	h.mu.RLock()
	rt, ok := h.byHost[r.URL.Host]
	if !ok {
		rt = h.def
	}
	h.mu.RUnlock()
	if rt == nil {
		return nil, errors.New("e2e: setupClient was not called")
	}
	return rt.RoundTrip(r)
}

// result is one HTTP exchange: a status and body, or a transport error.
type result struct {
	status int
	code   string // error.code of a JSON error body
	body   []byte
	header http.Header
	err    error
}

// retryable503 are the 503 codes README documents as "not applied, retry"
// plus outcome_unknown, which a retry with the same message id resolves.
var retryable503 = map[string]bool{
	"no_leader": true, "not_ready": true, "overloaded": true, "timeout": true, "outcome_unknown": true,
	"shutting_down": true, "shard_unavailable": true,
}

// class names the outcome for the error tables: "201", "503 no_leader",
// "conn-error", "client-timeout", …
func (r result) class() string {
	if r.err != nil {
		var ne net.Error
		if errors.As(r.err, &ne) && ne.Timeout() {
			return "client-timeout"
		}
		return "conn-error"
	}
	if r.code != "" {
		return fmt.Sprintf("%d %s", r.status, r.code)
	}
	return fmt.Sprint(r.status)
}

// retryable reports whether the outcome is one that faults are expected to
// produce: a connection error, a client timeout or a documented 503.
func (r result) retryable() bool {
	return r.err != nil || (r.status == http.StatusServiceUnavailable && retryable503[r.code])
}

func (r result) String() string {
	if r.err != nil {
		return r.class() + ": " + r.err.Error()
	}
	return fmt.Sprintf("%s: %s", r.class(), bytes.TrimSpace(r.body))
}

// api sends the suite's own requests through routes, each once: the
// workload counts every outcome and retries by itself.
var api = func() *sdclient.Client {
	c, err := sdclient.New(sdclient.Config{Transport: routes, Timeout: requestTimeout, MaxAttempts: 1})
	if err != nil {
		panic(err) // no endpoint to parse: cannot fail
	}
	return c
}()

// do sends one request to the node and path of rawURL.
func do(method, rawURL string, body []byte) result {
	u, err := url.Parse(rawURL)
	if err != nil {
		return result{err: err}
	}
	rep, err := api.Exchange(context.Background(), u.Scheme+"://"+u.Host,
		sdclient.Call{Method: method, Path: u.RequestURI(), Body: body, KeepBody: true})
	if terr, failed := sdclient.TransportFailure(err); failed {
		return result{err: terr}
	}
	r := result{status: rep.Status, body: rep.Body, header: rep.Header}
	var e *sdclient.Error
	if errors.As(err, &e) && !strings.HasPrefix(string(e.Code), "http_") {
		r.code = string(e.Code)
	}
	return r
}

// doWith sends one request with c, adding header: for probes that must
// send what a client never would (no credentials, plain HTTP to HTTPS).
func doWith(c *http.Client, method, url string, body []byte, header http.Header) result {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		return result{err: err}
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := c.Do(req)
	if err != nil {
		return result{err: err}
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return result{status: resp.StatusCode, err: err}
	}
	r := result{status: resp.StatusCode, body: b, header: resp.Header}
	if e := sdclient.DecodeError(resp.StatusCode, nil, b, ""); resp.StatusCode >= 400 && !strings.HasPrefix(string(e.Code), "http_") {
		r.code = string(e.Code)
	}
	return r
}

// clusterView is GET /v1/cluster, shardView one of its shards.
type (
	clusterView = sdclient.ClusterStatus
	shardView   = sdclient.Shard
)

func getCluster(base string) (*clusterView, error) {
	r := do("GET", base+"/v1/cluster", nil)
	if r.err != nil || r.status != http.StatusOK {
		return nil, fmt.Errorf("GET %s/v1/cluster: %s", base, r)
	}
	var v clusterView
	if err := json.Unmarshal(r.body, &v); err != nil {
		return nil, fmt.Errorf("GET %s/v1/cluster: %v", base, err)
	}
	return &v, nil
}

// aliveMembers lists the members a node sees as alive.
func aliveMembers(v *clusterView) []string {
	var out []string
	for _, m := range v.Members {
		if m.State == "alive" {
			out = append(out, m.ID)
		}
	}
	sort.Strings(out)
	return out
}

// leading counts the shards each node leads, each by its own report.
func leading(urls map[string]string, nodes []string) (map[string]int, error) {
	out := map[string]int{}
	for _, n := range nodes {
		v, err := getCluster(urls[n])
		if err != nil {
			return nil, err
		}
		for _, s := range v.Shards {
			if s.Local && s.State == "Leader" {
				out[n]++
			}
		}
	}
	return out, nil
}

// mostLeading picks the node leading the most shards, preferring the first
// in nodes on a tie.
func mostLeading(counts map[string]int, nodes []string) string {
	best := nodes[0]
	for _, n := range nodes {
		if counts[n] > counts[best] {
			best = n
		}
	}
	return best
}

// converged checks, once, that every node answers /v1/cluster ready and that
// each shard has one leader that all nodes name, with every replica in the
// leader's configuration applied up to the leader's applied index and no
// replica held outside that configuration.
func converged(urls map[string]string, nodes []string) error {
	views := map[string]*clusterView{}
	for _, n := range nodes {
		v, err := getCluster(urls[n])
		if err != nil {
			return err
		}
		if !v.Ready {
			return fmt.Errorf("%s is not ready", n)
		}
		views[n] = v
	}
	type local struct {
		node string
		sv   shardView
	}
	byShard := map[uint32][]local{}
	named := map[uint32]map[string]bool{} // leader ids the nodes name
	for _, n := range nodes {
		for _, s := range views[n].Shards {
			if named[s.ID] == nil {
				named[s.ID] = map[string]bool{}
			}
			named[s.ID][s.Leader] = true
			if s.Local {
				byShard[s.ID] = append(byShard[s.ID], local{n, s})
			}
		}
	}
	ids := make([]uint32, 0, len(named))
	for id := range named {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	for _, id := range ids {
		var leader *local
		for i, l := range byShard[id] {
			if l.sv.State == "Leader" {
				if leader != nil {
					return fmt.Errorf("shard %d: two leaders, %s and %s", id, leader.node, l.node)
				}
				leader = &byShard[id][i]
			}
		}
		if leader == nil {
			return fmt.Errorf("shard %d: no leader among %v", id, nodes)
		}
		if len(named[id]) != 1 || !named[id][leader.node] {
			return fmt.Errorf("shard %d: nodes name leaders %v, the leader is %s", id, keys(named[id]), leader.node)
		}
		inConfig := map[string]bool{}
		for _, r := range leader.sv.Replicas {
			inConfig[r.ID] = true
		}
		seen := map[string]bool{}
		for _, l := range byShard[id] {
			seen[l.node] = true
			if !inConfig[l.node] {
				return fmt.Errorf("shard %d: %s holds a replica outside the configuration %v", id, l.node, keys(inConfig))
			}
			if l.sv.AppliedIndex != leader.sv.AppliedIndex {
				return fmt.Errorf("shard %d: %s applied %d, leader %s applied %d", id, l.node, l.sv.AppliedIndex, leader.node, leader.sv.AppliedIndex)
			}
		}
		for r := range inConfig {
			if !seen[r] && contains(nodes, r) {
				return fmt.Errorf("shard %d: %s is in the configuration but reports no replica", id, r)
			}
		}
	}
	return nil
}

// waitConverged polls converged until it holds or the deadline passes.
func waitConverged(urls map[string]string, nodes []string, timeout time.Duration) (time.Duration, error) {
	start := time.Now()
	var err error
	for time.Since(start) < timeout {
		if err = converged(urls, nodes); err == nil {
			return time.Since(start), nil
		}
		time.Sleep(250 * time.Millisecond)
	}
	return time.Since(start), fmt.Errorf("not converged after %v: %v", timeout, err)
}

// waitFor polls cond every 200ms until it returns nil or the deadline passes.
func waitFor(timeout time.Duration, what string, cond func() error) (time.Duration, error) {
	start := time.Now()
	for {
		err := cond()
		if err == nil {
			return time.Since(start), nil
		}
		if time.Since(start) > timeout {
			return time.Since(start), fmt.Errorf("%s: not within %v: %v", what, timeout, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func keys(m map[string]bool) string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return strings.Join(out, ",")
}

// placement reports each shard's configuration as its leader sees it:
// shard -> sorted replica ids, a nonvoter marked with a trailing "~".
func placement(urls map[string]string, nodes []string) (map[uint32][]string, error) {
	out := map[uint32][]string{}
	for _, n := range nodes {
		v, err := getCluster(urls[n])
		if err != nil {
			return nil, err
		}
		for _, s := range v.Shards {
			if !s.Local || s.State != "Leader" {
				continue
			}
			var ids []string
			for _, r := range s.Replicas {
				id := r.ID
				if r.Suffrage != "voter" {
					id += "~"
				}
				ids = append(ids, id)
			}
			sort.Strings(ids)
			out[s.ID] = ids
		}
	}
	return out, nil
}

// waitPlacement waits until every shard's voters are exactly want(shard).
// It gives up at timeout, or earlier when no configuration changed for
// stall, and then reports the shards still placed otherwise.
func waitPlacement(urls map[string]string, nodes []string, shards int, want func(uint32) []string, timeout, stall time.Duration) (time.Duration, []string, error) {
	start, changed := time.Now(), time.Now()
	var last string
	for {
		got, err := placement(urls, nodes)
		if err != nil {
			return time.Since(start), nil, err
		}
		var off []string
		for id := uint32(0); int(id) < shards; id++ {
			w := append([]string(nil), want(id)...)
			sort.Strings(w)
			if strings.Join(got[id], ",") != strings.Join(w, ",") {
				off = append(off, fmt.Sprintf("shard %d has %v, placement wants %v", id, got[id], w))
			}
		}
		if len(off) == 0 {
			return time.Since(start), nil, nil
		}
		if sig := fmt.Sprint(got); sig != last {
			last, changed = sig, time.Now()
		}
		if time.Since(start) > timeout || time.Since(changed) > stall {
			return time.Since(start), off, nil
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// membersAlive checks that every node sees every one of nodes as alive.
func membersAlive(urls map[string]string, nodes []string) error {
	var bad []string
	for _, n := range nodes {
		v, err := getCluster(urls[n])
		if err != nil {
			return err
		}
		state := map[string]string{}
		for _, m := range v.Members {
			state[m.ID] = m.State
		}
		for _, m := range nodes {
			if state[m] != "alive" {
				bad = append(bad, fmt.Sprintf("%s sees %s as %q", n, m, state[m]))
			}
		}
	}
	if len(bad) > 0 {
		return fmt.Errorf("gossip membership: %s", strings.Join(bad, "; "))
	}
	return nil
}
