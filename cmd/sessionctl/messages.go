package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/sessiond/sessiond/client"
)

// maxPage is the largest page of messages the server hands out.
const maxPage = 1000

func cmdMessages(a *app, fs *flag.FlagSet, args []string) error {
	after := fs.Uint64("after", 0, "only messages after this seq")
	limit := fs.Int("limit", 100, fmt.Sprintf("messages per page, 1 to %d", maxPage))
	all := fs.Bool("all", false, "follow the pages to the last message instead of printing one")
	wait := fs.Duration("wait", 0, "when no message follows --after, wait up to this long (at most 60s) for one")
	id, c, opts, err := a.readSetup(fs, args)
	if err != nil {
		return err
	}
	switch {
	case *limit < 1 || *limit > maxPage:
		return usagef("messages", "--limit must be 1 to %d, not %d", maxPage, *limit)
	case *wait < 0 || *wait > time.Minute:
		return usagef("messages", "--wait must be 0 to 60s, not %v", *wait)
	}
	out := client.MessagePage{Messages: []client.Message{}}
	q := client.MessagesQuery{After: *after, Limit: *limit, Wait: *wait}
	for {
		page, err := c.Messages(context.Background(), id, q, opts...)
		if err != nil {
			return err
		}
		out.Messages = append(out.Messages, page.Messages...)
		out.Version, out.Total, out.HasMore, out.NextAfter = page.Version, page.Total, page.HasMore, page.NextAfter
		if !*all || !page.HasMore || page.NextAfter <= q.After {
			break
		}
		q.After, q.Wait = page.NextAfter, 0
	}
	if a.output == "json" {
		return writeJSON(a.stdout, out)
	}
	messagesTable(a.stdout, out.Messages)
	fmt.Fprintf(a.stdout, "%d of %d %s, version %d\n", len(out.Messages), out.Total, plural(out.Total, "message"), out.Version)
	if out.HasMore {
		fmt.Fprintf(a.stdout, "more after %d: sessionctl messages %s --after %d (or --all)\n", out.NextAfter, id, out.NextAfter)
	}
	return nil
}

// messagesTable prints one line a message; long or multi-line content is
// cut to keep the table readable (-o json has all of it).
func messagesTable(w io.Writer, msgs []client.Message) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SEQ\tID\tROLE\tCREATED\tCONTENT")
	for _, m := range msgs {
		content := strings.Join(strings.Fields(m.Content), " ")
		if r := []rune(content); len(r) > 60 {
			content = string(r[:59]) + "…"
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\n", m.Seq, dash(m.ID), m.Role,
			time.UnixMilli(m.CreatedAt).UTC().Format(time.RFC3339), content)
	}
	tw.Flush()
}
