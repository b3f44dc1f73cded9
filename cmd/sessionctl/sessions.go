package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/sessiond/sessiond/client"
)

// maxListLimit is the largest page the server hands out.
const maxListLimit = 1000

func cmdSessions(a *app, fs *flag.FlagSet, args []string) error {
	prefix := fs.String("prefix", "", "only sessions whose id starts with this")
	after := fs.String("after", "", "start after this session id (the next of an earlier page)")
	limit := fs.Int("limit", 100, fmt.Sprintf("sessions per page, 1 to %d", maxListLimit))
	all := fs.Bool("all", false, "follow the pages to the end instead of printing one")
	_, c, err := a.setup(fs, args, 0, 0)
	if err != nil {
		return err
	}
	if *limit < 1 || *limit > maxListLimit {
		return usagef("sessions", "--limit must be 1 to %d, not %d", maxListLimit, *limit)
	}
	out := client.SessionPage{Sessions: []client.SessionInfo{}}
	cursor := *after
	for {
		page, err := c.Sessions(context.Background(), client.ListQuery{Prefix: *prefix, After: cursor, Limit: *limit})
		if err != nil {
			return err
		}
		if page.Next != "" && page.Next <= cursor {
			return fmt.Errorf("the listing did not advance past %q; stopping", cursor)
		}
		out.Sessions = append(out.Sessions, page.Sessions...)
		out.Next, cursor = page.Next, page.Next
		if !*all || cursor == "" {
			break
		}
	}
	if a.output == "json" {
		return writeJSON(a.stdout, out)
	}
	sessionsTable(a.stdout, out.Sessions)
	if out.Next != "" {
		fmt.Fprintf(a.stdout, "more after %s: sessionctl sessions --after %s (or --all)\n", out.Next, out.Next)
	}
	return nil
}

func sessionsTable(w io.Writer, sessions []client.SessionInfo) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tMESSAGES\tSIZE\tUPDATED")
	for _, s := range sessions {
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\n", s.ID, s.MessageCount, byteSize(s.SizeBytes),
			time.UnixMilli(s.UpdatedAt).UTC().Format(time.RFC3339))
	}
	tw.Flush()
	fmt.Fprintf(w, "%d %s\n", len(sessions), plural(len(sessions), "session"))
}

// byteSize prints n in B, KiB, MiB or GiB with one decimal above bytes.
func byteSize(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	v, i := float64(n)/unit, 0
	for v >= unit && i < 2 {
		v /= unit
		i++
	}
	return fmt.Sprintf("%.1f %ciB", v, "KMG"[i])
}
