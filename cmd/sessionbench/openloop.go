package main

import (
	"context"
	"time"
)

// Open loop (--rate): requests are due at fixed intervals whatever the
// server does, and each one's latency is measured from when it was due. A
// closed loop sends the next request only once the last is answered, so a
// server that stalls also stalls the load, and the requests that would have
// arrived meanwhile never measure the stall (coordinated omission).

// lateAfter is how long a request may wait in the backlog and still count as
// on time: waiting longer means no worker was free. The wait from due time to
// release (timer wake-up, up to about a millisecond) is not part of it, but
// is part of the latency and the start delay.
const lateAfter = time.Millisecond

// slot is one scheduled request: when it is due, when the schedule released
// it, and its place in the schedule, which also picks the node round-robin.
type slot struct {
	due, released time.Time
	n             int64
}

// schedule releases a slot every 1/rate seconds into a bounded backlog that
// the workers take from. When every worker is busy the slots wait there,
// keeping their due time; one due while the backlog is full is dropped.
type schedule struct {
	backlog            chan slot
	interval           float64 // nanoseconds between slots
	start, measureFrom time.Time
	end                time.Time // zero: no time limit
	requests           int64     // cap on measured slots; 0 = none
	// Written by run only and read once it has returned; measured slots only.
	due, dropped int64
}

func newSchedule(cfg *config, start, measureFrom, end time.Time) *schedule {
	return &schedule{
		backlog:     make(chan slot, cfg.backlog),
		interval:    float64(time.Second) / cfg.rate,
		start:       start,
		measureFrom: measureFrom,
		end:         end,
		requests:    cfg.requests,
	}
}

// run releases slots until the end of the run, the request cap or ctx, then
// closes the backlog. Due times come from the slot number, not from when
// the previous slot went out, so a late wake-up does not shift the schedule:
// the slots it missed go out at once, with their own due times.
func (s *schedule) run(ctx context.Context) {
	defer close(s.backlog)
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for n := int64(0); ctx.Err() == nil; n++ {
		due := s.start.Add(time.Duration(float64(n) * s.interval))
		if !s.end.IsZero() && !due.Before(s.end) {
			return
		}
		measured := !due.Before(s.measureFrom)
		if measured && s.requests > 0 && s.due >= s.requests {
			return
		}
		if d := time.Until(due); d > 0 {
			timer.Reset(d)
			select {
			case <-ctx.Done():
				return
			case <-timer.C:
			}
		}
		if measured {
			s.due++
		}
		select {
		case s.backlog <- slot{due: due, released: time.Now(), n: n}:
		default:
			if measured {
				s.dropped++
			}
		}
	}
}

// openLoop sends the slots the worker takes from the backlog, latency
// counted from each slot's due time. Slots still waiting when the run ends
// (time is up, or a signal) are counted as unsent, not sent late.
func (w *worker) openLoop(ctx context.Context, cfg *config, content string, s *schedule) {
	for sl := range s.backlog {
		measured := !sl.due.Before(s.measureFrom)
		now := time.Now()
		if ctx.Err() != nil || (!s.end.IsZero() && !now.Before(s.end)) {
			if measured {
				w.unsent++
			}
			continue
		}
		if measured {
			w.startDelay.Record(now.Sub(sl.due).Microseconds())
			if now.Sub(sl.released) >= lateAfter {
				w.late++
			}
		}
		w.one(cfg, cfg.addrs[sl.n%int64(len(cfg.addrs))], content, measured, sl.due)
	}
}

// openLoopStats is how well the schedule was kept, measured slots only.
type openLoopStats struct {
	due, dropped, late, unsent int64
	startDelay                 *Histogram // microseconds from due to sent
}

func collectOpenLoop(s *schedule, workers []*worker) *openLoopStats {
	st := &openLoopStats{due: s.due, dropped: s.dropped, startDelay: NewHistogram()}
	for _, w := range workers {
		st.late += w.late
		st.unsent += w.unsent
		st.startDelay.Merge(w.startDelay)
	}
	return st
}
