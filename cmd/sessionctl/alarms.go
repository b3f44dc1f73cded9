package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"text/tabwriter"
	"time"
)

type alarmList struct {
	Alarms []struct {
		Name    string          `json:"name"`
		At      int64           `json:"at"`
		Payload json.RawMessage `json:"payload"`
	} `json:"alarms"`
	Fired []struct {
		Name      string          `json:"name"`
		At        int64           `json:"at"`
		FiredAt   int64           `json:"firedAt"`
		Version   uint64          `json:"version"`
		Delivered bool            `json:"delivered"`
		Payload   json.RawMessage `json:"payload"`
	} `json:"fired"`
}

// cmdAlarms lists a session's pending alarms and its recent fires.
func cmdAlarms(a *app, fs *flag.FlagSet, args []string) error {
	pos, c, err := a.setup(fs, args, 1, 1, "ID")
	if err != nil {
		return err
	}
	resp, err := c.do(context.Background(), "GET", sessionPath(pos[0])+"/alarms", nil)
	if err != nil {
		return err
	}
	if a.output == "json" {
		return a.printBody(resp.body)
	}
	var l alarmList
	if err := json.Unmarshal(resp.body, &l); err != nil {
		return fmt.Errorf("unexpected answer from %s: %v", resp.addr, err)
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
