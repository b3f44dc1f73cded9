package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"text/tabwriter"
	"time"
)

// cmdAlarms lists a session's pending alarms and its recent fires.
func cmdAlarms(a *app, fs *flag.FlagSet, args []string) error {
	pos, c, err := a.setup(fs, args, 1, 1, "ID")
	if err != nil {
		return err
	}
	l, err := c.Alarms(context.Background(), pos[0])
	if err != nil {
		return err
	}
	if a.output == "json" {
		return writeJSON(a.stdout, l)
	}
	tw := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ALARM\tSTATE\tDUE\tFIRED\tPAYLOAD")
	ms := func(t int64) string { return time.UnixMilli(t).UTC().Format(time.RFC3339) }
	for _, al := range l.Alarms {
		fmt.Fprintf(tw, "%s\tpending\t%s\t-\t%s\n", al.Name, ms(al.At), orDash(al.Payload))
	}
	for _, f := range l.Fired {
		state := "fired"
		if f.Delivered {
			state = "delivered"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", f.Name, state, ms(f.At), ms(f.FiredAt), orDash(f.Payload))
	}
	return tw.Flush()
}

func orDash(b json.RawMessage) string {
	if len(b) == 0 {
		return "-"
	}
	return string(b)
}
