package httpapi

import (
	"math"
	"sync"
	"time"
)

// CodeRateLimited refuses a write over its session's rate.
const CodeRateLimited = "rate_limited"

// sessionLimiter is a token bucket per session id for writes: a session
// may take burst writes at once and rate writes a second after that. It
// protects a shard, whose writes all go through one leader, from one hot or
// abusive session. Each node that serves writes keeps its own buckets, so
// a session written through several nodes at once gets each node's rate.
// Buckets that have filled up again are dropped, so memory follows the
// sessions written recently. Safe for concurrent use.
type sessionLimiter struct {
	rate, burst float64

	mu        sync.Mutex
	buckets   map[string]*tokenBucket
	lastSweep time.Time
}

type tokenBucket struct {
	tokens float64
	at     time.Time
}

// sweepEvery is how often full buckets are dropped.
const sweepEvery = 10 * time.Second

// newSessionLimiter returns nil (no limit) when rate is not positive.
func newSessionLimiter(rate float64, burst int) *sessionLimiter {
	if rate <= 0 {
		return nil
	}
	return &sessionLimiter{rate: rate, burst: math.Max(float64(burst), 1), buckets: map[string]*tokenBucket{}}
}

// allow takes a token for a write to session id at now, or says how long
// until one is available.
func (l *sessionLimiter) allow(id string, now time.Time) (bool, time.Duration) {
	if l == nil {
		return true, 0
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if now.Sub(l.lastSweep) >= sweepEvery {
		l.sweep(now)
	}
	b := l.buckets[id]
	if b == nil {
		b = &tokenBucket{tokens: l.burst, at: now}
		l.buckets[id] = b
	}
	b.tokens = math.Min(l.burst, b.tokens+now.Sub(b.at).Seconds()*l.rate)
	b.at = now
	if b.tokens >= 1 {
		b.tokens--
		return true, 0
	}
	return false, time.Duration((1 - b.tokens) / l.rate * float64(time.Second))
}

func (l *sessionLimiter) sweep(now time.Time) {
	l.lastSweep = now
	for id, b := range l.buckets {
		if b.tokens+now.Sub(b.at).Seconds()*l.rate >= l.burst {
			delete(l.buckets, id)
		}
	}
}
