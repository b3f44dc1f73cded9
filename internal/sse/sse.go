// Package sse reads Server-Sent Events, the format of sessiond's change
// streams, for the command-line tools and tests. It handles what sessiond
// sends: id, event and one data line per event, and comment lines.
package sse

import (
	"bufio"
	"io"
	"strings"
)

// Event is one Server-Sent Event.
type Event struct {
	ID    string // the id field; "" when the event has none
	Event string // the event type
	Data  string
}

// Reader reads events from a stream. Not safe for concurrent use.
type Reader struct {
	sc *bufio.Scanner
}

// NewReader reads events from r; lines may be up to 16 MiB.
func NewReader(r io.Reader) *Reader {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	return &Reader{sc: sc}
}

// Next returns the next event, skipping comments (keepalives). At the end
// of the stream it returns io.EOF, or the read error.
func (r *Reader) Next() (Event, error) {
	var ev Event
	var data []string
	for r.sc.Scan() {
		line := r.sc.Text()
		switch {
		case line == "":
			if ev.Event != "" || len(data) > 0 {
				ev.Data = strings.Join(data, "\n")
				return ev, nil
			}
		case strings.HasPrefix(line, ":"):
		default:
			k, v, _ := strings.Cut(line, ":")
			v = strings.TrimPrefix(v, " ")
			switch k {
			case "id":
				ev.ID = v
			case "event":
				ev.Event = v
			case "data":
				data = append(data, v)
			}
		}
	}
	if err := r.sc.Err(); err != nil {
		return Event{}, err
	}
	return Event{}, io.EOF
}
