// Package grafana holds sessiond's Grafana dashboard (sessiond.json) and
// reads the metrics it queries, so that tests can check the dashboard
// against what a node exposes.
package grafana

import (
	_ "embed"
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
)

// Dashboard is the dashboard JSON, as Grafana imports it.
//
//go:embed sessiond.json
var Dashboard []byte

// Panel is the part of a dashboard panel the checks read.
type Panel struct {
	ID         int    `json:"id"`
	Type       string `json:"type"`
	Title      string `json:"title"`
	Datasource *struct {
		Type string `json:"type"`
		UID  string `json:"uid"`
	} `json:"datasource"`
	GridPos struct {
		H, W, X, Y int
	} `json:"gridPos"`
	Targets []struct {
		RefID string `json:"refId"`
		Expr  string `json:"expr"`
	} `json:"targets"`
}

// Board is the part of the dashboard the checks read.
type Board struct {
	UID           string  `json:"uid"`
	Title         string  `json:"title"`
	SchemaVersion int     `json:"schemaVersion"`
	Panels        []Panel `json:"panels"`
	Templating    struct {
		List []struct {
			Name, Type, Query string
		} `json:"list"`
	} `json:"templating"`
}

// Parse decodes a dashboard.
func Parse(data []byte) (*Board, error) {
	var b Board
	if err := json.Unmarshal(data, &b); err != nil {
		return nil, fmt.Errorf("dashboard: %w", err)
	}
	return &b, nil
}

// metricName matches the metric names sessiond, client_golang's Go
// collector and its process collector expose.
var metricName = regexp.MustCompile(`\b(?:sessiond|go|process)_[a-z0-9_]+\b`)

// Metrics lists, sorted and once each, the metric names the panels'
// queries use.
func (b *Board) Metrics() []string {
	var out []string
	for _, p := range b.Panels {
		for _, t := range p.Targets {
			for _, m := range metricName.FindAllString(t.Expr, -1) {
				if !slices.Contains(out, m) {
					out = append(out, m)
				}
			}
		}
	}
	slices.Sort(out)
	return out
}
