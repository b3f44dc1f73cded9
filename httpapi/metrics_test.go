package httpapi_test

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/sessiond/sessiond/httpapi"
	"github.com/sessiond/sessiond/metrics"
)

// serveMeasured serves the API over st like serveFake, with metrics.
func serveMeasured(t *testing.T, st *fakeStore, perShard, total int, cl httpapi.Cluster) (string, *metrics.Registry) {
	t.Helper()
	reg := metrics.New()
	cfg := httpapi.DefaultConfig()
	cfg.Logger = testLogger(t)
	cfg.MaxInFlightPerShard, cfg.MaxInFlight = perShard, total
	cfg.Cluster = cl
	cfg.Metrics, cfg.MetricsHandler = reg, reg.Handler()
	srv := httptest.NewServer(httpapi.New(st, cfg))
	t.Cleanup(srv.Close)
	return srv.URL, reg
}

// metricSum adds the values (a histogram's sample count) of the series of
// name whose labels include every pair of want.
func metricSum(t *testing.T, g prometheus.Gatherer, name string, want map[string]string) (sum float64, series int) {
	t.Helper()
	families, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.GetMetric() {
			if !hasLabels(m, want) {
				continue
			}
			series++
			switch {
			case m.Histogram != nil:
				sum += float64(m.Histogram.GetSampleCount())
			case m.Counter != nil:
				sum += m.Counter.GetValue()
			case m.Gauge != nil:
				sum += m.Gauge.GetValue()
			}
		}
	}
	return sum, series
}

func hasLabels(m *dto.Metric, want map[string]string) bool {
	found := 0
	for _, l := range m.GetLabel() {
		if v, ok := want[l.GetName()]; ok && v == l.GetValue() {
			found++
		}
	}
	return found == len(want)
}

const requestMetric = "sessiond_http_request_duration_seconds"

// Requests through a node that forwards them to the shard leader are
// counted on both nodes by route template: as forwarded on the first and
// as local on the leader, with the status each answered. A request the
// leader sheds counts one overload refusal there, none on the forwarding
// node, and both serve their counts at GET /metrics.
func TestMetricsCountForwardedAndLocalRequestsAndRefusalsWhereTheyHappen(t *testing.T) {
	const bound = 2
	leader := newFakeStore("leader", testShardCount)
	leaderURL, leaderReg := serveMeasured(t, leader, bound, 100, nil)
	proxy := newFakeStore(testNodeID, testShardCount)
	proxyURL, proxyReg := serveMeasured(t, proxy, 1, 1, &fakeCluster{leader: "leader", leaderAddr: strings.TrimPrefix(leaderURL, "http://")})

	const busy = uint32(1)
	ids := leader.sessionsOn(busy, "m", bound+1)
	letGo, bg := fillShard(t, leader, busy, proxyURL, ids[:bound])
	wantOverloaded(t, call(t, http.MethodPost, proxyURL+sessionPath(ids[bound], "/messages"), appendBody("m1")), 0)
	letGo()
	for _, r := range bg.wait() {
		wantStatus(t, r, http.StatusCreated)
	}
	wantStatus(t, call(t, http.MethodPost, proxyURL+sessionPath(ids[bound], "/messages"), appendBody("m1")), http.StatusCreated)

	route := map[string]string{"route": "/api/chat/session/:id/messages", "method": "POST"}
	with := func(extra ...string) map[string]string {
		m := map[string]string{"route": route["route"], "method": route["method"]}
		for i := 0; i < len(extra); i += 2 {
			m[extra[i]] = extra[i+1]
		}
		return m
	}
	for _, c := range []struct {
		name   string
		reg    *metrics.Registry
		labels map[string]string
		want   float64
	}{
		{"forwarded 201 on the forwarding node", proxyReg, with("served", "forwarded", "status", "201"), bound + 1},
		{"forwarded 503 on the forwarding node", proxyReg, with("served", "forwarded", "status", "503"), 1},
		{"local on the forwarding node", proxyReg, with("served", "local"), 0},
		{"local 201 on the leader", leaderReg, with("served", "local", "status", "201"), bound + 1},
		{"local 503 on the leader", leaderReg, with("served", "local", "status", "503"), 1},
		{"forwarded on the leader", leaderReg, with("served", "forwarded"), 0},
	} {
		if got, _ := metricSum(t, c.reg.Gatherer(), requestMetric, c.labels); got != c.want {
			t.Errorf("%s: %v requests, want %v", c.name, got, c.want)
		}
	}
	overloaded := map[string]string{"reason": metrics.RefusalOverloaded}
	if got, _ := metricSum(t, leaderReg.Gatherer(), "sessiond_refusals_total", overloaded); got != 1 {
		t.Errorf("leader counted %v overload refusals, want 1", got)
	}
	if got, _ := metricSum(t, proxyReg.Gatherer(), "sessiond_refusals_total", overloaded); got != 0 {
		t.Errorf("forwarding node counted %v overload refusals, want 0: the leader refused", got)
	}

	for _, u := range []string{leaderURL, proxyURL} {
		r := call(t, http.MethodGet, u+"/metrics", "")
		wantStatus(t, r, http.StatusOK)
		if !strings.Contains(string(r.Body), `sessiond_http_request_duration_seconds_count{method="POST",route="/api/chat/session/:id/messages"`) {
			t.Errorf("GET %s/metrics lacks the append route:\n%.2000s", u, r.Body)
		}
	}
}

// A client cannot make the node create metric series at will: requests
// with made-up methods and paths are counted under method "other" and
// route "none" (or the route template they hit), never under their own
// names.
func TestMetricsLabelsStayBoundedUnderMadeUpMethodsAndPaths(t *testing.T) {
	st := newFakeStore(testNodeID, testShardCount)
	url, reg := serveMeasured(t, st, 10, 10, nil)
	const n = 40
	for i := 0; i < n; i++ {
		for _, path := range []string{fmt.Sprintf("/no/such/route-%d", i), sessionPath(fmt.Sprintf("s-%d", i))} {
			req, err := http.NewRequest(fmt.Sprintf("BREW%d", i), url+path, nil)
			if err != nil {
				t.Fatal(err)
			}
			resp, err := fakeClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
		wantStatus(t, call(t, http.MethodGet, url+fmt.Sprintf("/unknown-%d", i), ""), http.StatusNotFound)
	}
	total, series := metricSum(t, reg.Gatherer(), requestMetric, nil)
	if total != 3*n {
		t.Fatalf("%v requests counted, want %d", total, 3*n)
	}
	if series > 4 {
		t.Fatalf("%d series for %d made-up requests; labels follow the client", series, 3*n)
	}
	if got, _ := metricSum(t, reg.Gatherer(), requestMetric, map[string]string{"method": "other", "route": metrics.RouteNone}); got != n {
		t.Errorf("%v made-up methods on unknown paths under method=other route=none, want %d", got, n)
	}
	if got, _ := metricSum(t, reg.Gatherer(), requestMetric, map[string]string{"method": "GET", "route": metrics.RouteNone, "status": "404"}); got != n {
		t.Errorf("%v GETs of unknown paths under route=none status=404, want %d", got, n)
	}
}
