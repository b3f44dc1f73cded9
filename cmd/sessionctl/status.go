package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sort"
	"strings"
	"sync"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/sessiond/sessiond/client"
	"github.com/sessiond/sessiond/internal/baseurl"
)

// fanoutTimeout bounds each extra member's answer, so one hung node delays
// status by at most this long.
const fanoutTimeout = 2 * time.Second

// collect asks the given addresses for /v1/cluster, then every alive or
// suspect member it lists. A node reports exact raft state only for shards it
// holds a replica of, so no single node sees the whole cluster.
func collect(ctx context.Context, c *client.Client) ([]*clusterView, []nodeReport, error) {
	first, err := c.Cluster(ctx)
	if err != nil {
		return nil, nil, err
	}
	views := []*clusterView{first}
	reports := []nodeReport{{Node: first.Node, Addr: first.Endpoint, Ready: first.Ready, Version: first.Version}}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, m := range first.Members {
		if m.ID == first.Node || m.HTTPAddr == "" || (m.State != "alive" && m.State != "suspect") {
			continue
		}
		addr, err := baseurl.Parse(m.HTTPAddr)
		if err != nil {
			reports = append(reports, nodeReport{Node: m.ID, Addr: m.HTTPAddr, Error: err.Error()})
			continue
		}
		wg.Add(1)
		go func(id, addr string) {
			defer wg.Done()
			v, err := askMember(ctx, c, addr)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				reports = append(reports, nodeReport{Node: id, Addr: addr, Error: errorReason(err)})
				return
			}
			views = append(views, v)
			reports = append(reports, nodeReport{Node: v.Node, Addr: addr, Ready: v.Ready, Version: v.Version})
		}(m.ID, addr)
	}
	wg.Wait()
	// Keep the queried node first, the others in a stable order.
	sort.SliceStable(views[1:], func(i, j int) bool { return views[1+i].Node < views[1+j].Node })
	sort.SliceStable(reports[1:], func(i, j int) bool { return reports[1+i].Node < reports[1+j].Node })
	return views, reports, nil
}

// askMember asks one member for its view, once and briefly, so one hung
// node delays status by at most fanoutTimeout.
func askMember(ctx context.Context, c *client.Client, addr string) (*clusterView, error) {
	mc, err := c.WithEndpoints(addr)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, fanoutTimeout)
	defer cancel()
	return mc.WithTimeout(fanoutTimeout).Cluster(ctx)
}

// merge combines the views. A member's own entry is exact, the others'
// come from gossip. A shard's view is its leader's (the newest term when
// two claim it), else a follower's local raft view, else the gossip-only
// view of the first node; the summary is recomputed from the chosen views.
func merge(views []*clusterView, reports []nodeReport) *mergedView {
	mv := &mergedView{Via: views[0].Node, Nodes: reports,
		Summary: summary{LeadersPerNode: map[string]int{}}}
	members := map[string]memberStatus{}
	for _, v := range views {
		mv.ShardCount = max(mv.ShardCount, v.ShardCount)
		for _, m := range v.Members {
			if _, ok := members[m.ID]; !ok || m.ID == v.Node { // own entry wins
				members[m.ID] = m
			}
		}
	}
	for _, m := range members {
		mv.Members = append(mv.Members, m)
	}
	sort.Slice(mv.Members, func(i, j int) bool { return mv.Members[i].ID < mv.Members[j].ID })

	byShard := map[uint32][]shardView{}
	for _, v := range views {
		for _, s := range v.Shards {
			s.Source = v.Node
			byShard[s.ID] = append(byShard[s.ID], s)
		}
	}
	ids := make([]uint32, 0, len(byShard))
	for id := range byShard {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	for _, id := range ids {
		cands := byShard[id]
		best := cands[0]
		for _, s := range cands[1:] {
			if better(s, best) {
				best = s
			}
		}
		for _, s := range cands { // only the move's leader reports it
			if best.Move == nil && s.Move != nil {
				best.Move = s.Move
			}
		}
		if best.Local {
			mv.Summary.ShardsSeen++
			if best.Converged {
				mv.Summary.ShardsConverged++
			}
		}
		if best.Move != nil {
			mv.Summary.MovesInFlight++
		}
		if best.Leader != "" {
			mv.Summary.LeadersPerNode[best.Leader]++
		}
		mv.Shards = append(mv.Shards, best)
	}
	return mv
}

func rank(s shardView) int {
	switch {
	case s.Local && s.State == "Leader":
		return 2
	case s.Local:
		return 1
	}
	return 0
}

func better(a, b shardView) bool {
	if rank(a) != rank(b) {
		return rank(a) > rank(b)
	}
	if a.Term != b.Term {
		return a.Term > b.Term
	}
	return a.AppliedIndex > b.AppliedIndex
}

// mergedStatus is the preamble of status, members and shards: they show
// parts of the same merged view.
func (a *app) mergedStatus(fs *flag.FlagSet, args []string) (*mergedView, error) {
	_, c, err := a.setup(fs, args, 0, 0)
	if err != nil {
		return nil, err
	}
	views, reports, err := collect(context.Background(), c)
	if err != nil {
		return nil, err
	}
	return merge(views, reports), nil
}

func cmdStatus(a *app, fs *flag.FlagSet, args []string) error {
	watch := fs.Bool("watch", false, "refresh the status every --interval until interrupted")
	interval := fs.Duration("interval", 2*time.Second, "with --watch: time between refreshes")
	count := fs.Int("count", 0, "with --watch: stop after this many refreshes (0: until interrupted)")
	_, c, err := a.setup(fs, args, 0, 0)
	if err != nil {
		return err
	}
	if !*watch {
		return a.showStatus(context.Background(), c)
	}
	if *interval <= 0 {
		return usagef("status", "--interval must be positive")
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	for n := 1; ; n++ {
		if a.tty {
			fmt.Fprint(a.stdout, "\033[H\033[2J") // redraw in place
		} else if n > 1 {
			fmt.Fprintln(a.stdout)
		}
		if a.output == "text" {
			fmt.Fprintf(a.stdout, "%s (every %v, Ctrl-C to stop)\n", time.Now().Format(time.TimeOnly), *interval)
		}
		// A cluster that stops answering is shown, not the end of the watch.
		if err := a.showStatus(ctx, c); err != nil && ctx.Err() == nil {
			fmt.Fprintf(a.stdout, "no answer: %s\n", errorText(err))
		}
		if n == *count {
			return nil
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(*interval):
		}
	}
}

// showStatus prints the merged view once.
func (a *app) showStatus(ctx context.Context, c *client.Client) error {
	views, reports, err := collect(ctx, c)
	if err != nil {
		return err
	}
	mv := merge(views, reports)
	if a.output == "json" {
		return writeJSON(a.stdout, mv)
	}
	fmt.Fprintf(a.stdout, "cluster via %s: %d members, %d shards\n", mv.Via, len(mv.Members), mv.ShardCount)
	fmt.Fprintln(a.stdout, progressLine(mv))
	fmt.Fprintf(a.stdout, "leaders per node: %s\n", leadersLine(mv))
	for _, r := range mv.Nodes {
		if r.Error != "" {
			fmt.Fprintf(a.stdout, "warning: %s (%s) did not answer: %s; its shards may show a follower's or gossip view\n", r.Node, r.Addr, r.Error)
		} else if !r.Ready {
			fmt.Fprintf(a.stdout, "warning: %s is not ready (a local shard has no leader)\n", r.Node)
		}
	}
	fmt.Fprintln(a.stdout)
	membersTable(a.stdout, mv.Members)
	fmt.Fprintln(a.stdout)
	shardsTable(a.stdout, mv.Shards)
	return nil
}

func cmdMembers(a *app, fs *flag.FlagSet, args []string) error {
	mv, err := a.mergedStatus(fs, args)
	if err != nil {
		return err
	}
	if a.output == "json" {
		return writeJSON(a.stdout, mv.Members)
	}
	membersTable(a.stdout, mv.Members)
	return nil
}

func cmdShards(a *app, fs *flag.FlagSet, args []string) error {
	mv, err := a.mergedStatus(fs, args)
	if err != nil {
		return err
	}
	if a.output == "json" {
		return writeJSON(a.stdout, mv.Shards)
	}
	shardsTable(a.stdout, mv.Shards)
	return nil
}

// progressLine is the one line an operator watches while a cluster
// rebalances: "shards converged 14/16, moves in flight 2".
func progressLine(mv *mergedView) string {
	line := fmt.Sprintf("shards converged %d/%d, moves in flight %d",
		mv.Summary.ShardsConverged, mv.ShardCount, mv.Summary.MovesInFlight)
	if unseen := mv.ShardCount - mv.Summary.ShardsSeen; unseen > 0 {
		line += fmt.Sprintf(" (%d %s not seen by any answering replica)", unseen, plural(unseen, "shard"))
	}
	return line
}

func leadersLine(mv *mergedView) string {
	counts := map[string]int{}
	for _, m := range mv.Members { // alive members leading nothing show as 0
		if m.State == "alive" {
			counts[m.ID] = 0
		}
	}
	for id, n := range mv.Summary.LeadersPerNode {
		counts[id] = n
	}
	ids := make([]string, 0, len(counts))
	for id := range counts {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	var parts []string
	for _, id := range ids {
		parts = append(parts, fmt.Sprintf("%s=%d", id, counts[id]))
	}
	if leaderless := mv.ShardCount - sumValues(mv.Summary.LeadersPerNode); leaderless > 0 {
		parts = append(parts, fmt.Sprintf("none=%d", leaderless))
	}
	return strings.Join(parts, " ")
}

func sumValues(m map[string]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}

func membersTable(w io.Writer, members []memberStatus) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "MEMBER\tSTATE\tHTTP\tDRAINING\tREPLICAS\tLEADING")
	for _, m := range members {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%d\n", m.ID, m.State, dash(m.HTTPAddr), yesNo(m.Draining), m.Replicas, m.Leading)
	}
	tw.Flush()
}

func shardsTable(w io.Writer, shards []shardView) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SHARD\tLEADER\tTERM\tCOMMIT\tAPPLIED\tSESSIONS\tREPLICAS\tDESIRED\tCONVERGED\tMOVE\tVIEW")
	for _, s := range shards {
		var reps []string
		for _, r := range s.Replicas {
			if r.Suffrage != "voter" {
				r.ID += "(" + r.Suffrage + ")"
			}
			reps = append(reps, r.ID)
		}
		conv, mov, view := yesNo(s.Converged), "-", s.Source
		if !s.Local {
			conv, view = "?", s.Source+"(gossip)"
		}
		if s.Move != nil {
			mov = fmt.Sprintf("%s->%s %s", dash(s.Move.From), dash(s.Move.To), s.Move.Step)
		}
		fmt.Fprintf(tw, "%d\t%s\t%d\t%d\t%d\t%d\t%s\t%s\t%s\t%s\t%s\n", s.ID, dash(s.Leader), s.Term,
			s.CommitIndex, s.AppliedIndex, s.Sessions, dash(strings.Join(reps, ",")),
			dash(strings.Join(s.Desired, ",")), conv, mov, view)
	}
	tw.Flush()
}
