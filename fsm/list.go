package fsm

import (
	"container/heap"
	"slices"
	"strings"
)

// SessionInfo is what a listing shows of one session: no messages and no
// fields, only their counts and sizes.
type SessionInfo struct {
	ID           string `json:"id"`
	CreatedAt    int64  `json:"createdAt"`
	UpdatedAt    int64  `json:"updatedAt"`
	MessageCount int    `json:"messageCount"`
	SizeBytes    int64  `json:"sizeBytes"` // Session.Size
	Version      uint64 `json:"version"`
}

// Info summarises s for a listing.
func (s *Session) Info() SessionInfo {
	return SessionInfo{ID: s.ID, CreatedAt: s.CreatedAt, UpdatedAt: s.UpdatedAt,
		MessageCount: s.MessageCount(), SizeBytes: s.Size(), Version: s.Version}
}

// List returns up to limit sessions whose id starts with prefix and sorts
// after after (bytewise, as Go compares strings), in ascending id order, and
// whether more such sessions follow the last one returned. An empty after
// starts at the beginning. Paging passes the last id of one page as after
// of the next, which stays a valid cursor whatever is written or deleted in
// between.
//
// Cost: the sessions are kept in hash buckets, not in id order, so every
// call looks at every session of the FSM: O(n log limit) time for n
// sessions, O(limit) memory. Paging through all n sessions in pages of k
// therefore costs O(n²/k · log k); BENCHMARKS.md has measurements. An
// ordered index would make a page O(k log n) but costs every write.
//
// Safe from any goroutine, concurrently with Apply. The buckets are read one
// at a time under the read lock, so a long listing never holds up Apply for
// more than one bucket's scan. The result is therefore not the state at one
// applied index: a session written or deleted while List runs may or may
// not be in it, but a session that exists for the whole call is always
// considered, and every session in the result existed during the call.
func (f *FSM) List(prefix, after string, limit int) (page []SessionInfo, more bool) {
	if limit <= 0 {
		return nil, false
	}
	// The limit+1 smallest matching sessions: one more than the page tells
	// whether the page is the last.
	h := &maxHeap{}
	keep := limit + 1
	for i := range f.buckets {
		f.mu.RLock()
		for id, s := range f.buckets[i].sessions {
			if id <= after || !strings.HasPrefix(id, prefix) {
				continue
			}
			switch {
			case len(*h) < keep:
				heap.Push(h, s)
			case id < (*h)[0].ID:
				(*h)[0] = s
				heap.Fix(h, 0)
			}
		}
		f.mu.RUnlock()
	}
	found := []*Session(*h)
	slices.SortFunc(found, func(a, b *Session) int { return strings.Compare(a.ID, b.ID) })
	if len(found) > limit {
		found, more = found[:limit], true
	}
	page = make([]SessionInfo, len(found))
	for i, s := range found {
		page[i] = s.Info()
	}
	return page, more
}

// maxHeap holds sessions with the largest id on top.
type maxHeap []*Session

func (h maxHeap) Len() int           { return len(h) }
func (h maxHeap) Less(i, j int) bool { return h[i].ID > h[j].ID }
func (h maxHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *maxHeap) Push(x any)        { *h = append(*h, x.(*Session)) }
func (h *maxHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}
