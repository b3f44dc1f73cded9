package grafana

import (
	"strings"
	"testing"
)

// The dashboard is valid JSON that Grafana imports: a uid and title, a
// Prometheus datasource variable every panel uses, unique panel ids,
// panels inside the 24-column grid that do not overlap, and every graph
// panel has queries with distinct refIds. Whether the queried metrics exist
// is checked against a running cluster in cmd/sessiond.
func TestDashboardIsImportableAndEveryPanelQueriesPrometheus(t *testing.T) {
	b, err := Parse(Dashboard)
	if err != nil {
		t.Fatal(err)
	}
	if b.UID == "" || b.Title == "" || b.SchemaVersion < 30 {
		t.Fatalf("uid %q title %q schemaVersion %d", b.UID, b.Title, b.SchemaVersion)
	}
	hasDatasource := false
	for _, v := range b.Templating.List {
		if v.Name == "datasource" && v.Type == "datasource" && v.Query == "prometheus" {
			hasDatasource = true
		}
	}
	if !hasDatasource {
		t.Fatal("no Prometheus datasource variable named datasource")
	}
	ids := map[int]bool{}
	type cell struct{ x, y int }
	taken := map[cell]int{}
	graphs := 0
	for _, p := range b.Panels {
		if p.ID == 0 || ids[p.ID] {
			t.Errorf("panel %q: id %d missing or used twice", p.Title, p.ID)
		}
		ids[p.ID] = true
		g := p.GridPos
		if g.W < 1 || g.H < 1 || g.X < 0 || g.Y < 0 || g.X+g.W > 24 {
			t.Errorf("panel %q: gridPos %+v outside the 24-column grid", p.Title, g)
		}
		for x := g.X; x < g.X+g.W; x++ {
			for y := g.Y; y < g.Y+g.H; y++ {
				if other, ok := taken[cell{x, y}]; ok {
					t.Errorf("panel %q overlaps panel %d at %d,%d", p.Title, other, x, y)
				}
				taken[cell{x, y}] = p.ID
			}
		}
		if p.Type == "row" {
			continue
		}
		graphs++
		if p.Datasource == nil || p.Datasource.Type != "prometheus" || p.Datasource.UID != "${datasource}" {
			t.Errorf("panel %q: datasource %+v, want the prometheus ${datasource} variable", p.Title, p.Datasource)
		}
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no queries", p.Title)
		}
		refs := map[string]bool{}
		for _, q := range p.Targets {
			if q.RefID == "" || refs[q.RefID] || strings.TrimSpace(q.Expr) == "" {
				t.Errorf("panel %q: query %q with refId %q empty or repeated", p.Title, q.Expr, q.RefID)
			}
			refs[q.RefID] = true
			if !metricName.MatchString(q.Expr) {
				t.Errorf("panel %q: query %q names no sessiond, go or process metric", p.Title, q.Expr)
			}
		}
	}
	// What the issue asks the dashboard to show.
	for _, want := range []string{"sessiond_http_request_duration_seconds_count", "sessiond_http_request_duration_seconds_bucket",
		"sessiond_shard_leader", "sessiond_shard_apply_lag_entries", "sessiond_raftlog_write_seconds_total", "sessiond_shard_moves_in_flight"} {
		found := false
		for _, m := range b.Metrics() {
			found = found || m == want
		}
		if !found {
			t.Errorf("no panel queries %s", want)
		}
	}
	if graphs < 10 {
		t.Errorf("%d graph panels", graphs)
	}
}
