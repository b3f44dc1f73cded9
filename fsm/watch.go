package fsm

import (
	"sync"
	"sync/atomic"
)

// Watching a session: a reader registers for a session id and is signalled
// after every change the FSM applies to it (a write, a delete, an expiry)
// and after every Restore, which may change anything. A signal says only
// "look again": the reader reads the session, which is immutable, and
// works out what is new from its versions. So a watcher never holds
// changes in memory, the apply goroutine never waits for a reader, and a
// slow reader just sees several changes at once.

type watchers struct {
	n         atomic.Int64 // registered watchers; 0 skips the lock on apply
	mu        sync.Mutex
	bySession map[string]map[chan struct{}]struct{}
}

// Watch registers for changes to session id. The channel receives a value
// (it never blocks the FSM; pending signals coalesce) after each change;
// cancel unregisters and must be called once the watch is no longer needed.
// Register before reading the state you compare with, so that no change
// falls between the read and the registration. Safe from any goroutine.
func (f *FSM) Watch(id string) (changed <-chan struct{}, cancel func()) {
	ch := make(chan struct{}, 1)
	w := &f.watch
	w.mu.Lock()
	if w.bySession == nil {
		w.bySession = map[string]map[chan struct{}]struct{}{}
	}
	set := w.bySession[id]
	if set == nil {
		set = map[chan struct{}]struct{}{}
		w.bySession[id] = set
	}
	set[ch] = struct{}{}
	w.n.Add(1)
	w.mu.Unlock()
	var once sync.Once
	return ch, func() {
		once.Do(func() {
			w.mu.Lock()
			delete(w.bySession[id], ch)
			if len(w.bySession[id]) == 0 {
				delete(w.bySession, id)
			}
			w.n.Add(-1)
			w.mu.Unlock()
		})
	}
}

// Watchers counts the registered watches.
func (f *FSM) Watchers() int { return int(f.watch.n.Load()) }

// notify signals the watchers of session id.
func (w *watchers) notify(id string) {
	if w.n.Load() == 0 {
		return
	}
	w.mu.Lock()
	for ch := range w.bySession[id] {
		signal(ch)
	}
	w.mu.Unlock()
}

// notifyAll signals every watcher.
func (w *watchers) notifyAll() {
	if w.n.Load() == 0 {
		return
	}
	w.mu.Lock()
	for _, set := range w.bySession {
		for ch := range set {
			signal(ch)
		}
	}
	w.mu.Unlock()
}

func signal(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default: // a signal is pending already
	}
}
