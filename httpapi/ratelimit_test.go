package httpapi

import (
	"testing"
	"time"
)

func TestSessionLimiterAllowsTheBurstThenTheRate(t *testing.T) {
	l := newSessionLimiter(10, 5)
	now := time.Unix(1000, 0)
	for i := range 5 {
		if ok, _ := l.allow("s", now); !ok {
			t.Fatalf("write %d of the burst refused", i)
		}
	}
	ok, wait := l.allow("s", now)
	if ok || wait <= 0 || wait > 100*time.Millisecond {
		t.Fatalf("write beyond the burst: %v, retry in %v (want about 100ms)", ok, wait)
	}
	if ok, _ := l.allow("other", now); !ok {
		t.Fatal("another session was limited by this one")
	}
	now = now.Add(100 * time.Millisecond)
	if ok, _ := l.allow("s", now); !ok {
		t.Fatal("a token did not come back after 1/rate")
	}
	if ok, _ := l.allow("s", now); ok {
		t.Fatal("more than the rate allowed")
	}
	// Buckets that have filled up are dropped at the next sweep.
	now = now.Add(sweepEvery)
	l.allow("fresh", now)
	if len(l.buckets) != 1 {
		t.Fatalf("%d buckets kept after a sweep, want only the fresh one", len(l.buckets))
	}
	var none *sessionLimiter
	if ok, _ := none.allow("s", now); !ok {
		t.Fatal("a nil limiter refused")
	}
}
