package main

import (
	"context"
	"flag"
	"fmt"
	"text/tabwriter"

	buildversion "github.com/sessiond/sessiond/internal/version"
)

// cmdVersion prints sessionctl's own version, then every live node's as it
// reports it in /v1/cluster. The client's version is printed even when no
// node answers.
func cmdVersion(a *app, fs *flag.FlagSet, args []string) error {
	_, c, err := a.setup(fs, args, 0, 0)
	if err != nil {
		return err
	}
	own := buildversion.String("")
	_, reports, err := collect(context.Background(), c)
	if a.output == "json" {
		out := map[string]any{"client": own, "nodes": reports}
		if err != nil {
			out["error"] = errorText(err)
		}
		if werr := writeJSON(a.stdout, out); werr != nil {
			return werr
		}
		return err
	}
	fmt.Fprintf(a.stdout, "sessionctl %s\n", own)
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NODE\tVERSION\tADDR")
	for _, r := range reports {
		v := dash(r.Version)
		if r.Error != "" {
			v = "? (" + r.Error + ")"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\n", r.Node, v, r.Addr)
	}
	return tw.Flush()
}
