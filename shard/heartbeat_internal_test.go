package shard

import (
	"io"
	"log/slog"
	"net"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

// slowNodeService answers heartbeats after a delay, as a busy peer does.
type slowNodeService struct {
	oldNodeService
	delay time.Duration
}

func (s *slowNodeService) Heartbeats(args HeartbeatArgs, reply *HeartbeatReply) error {
	time.Sleep(s.delay)
	return s.oldNodeService.Heartbeats(args, reply)
}

// newTestSender is a heartbeat sender flushing every period.
func newTestSender(t *testing.T, period time.Duration) *heartbeatSender {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	mux := NewMux(ln, ln.Addr(), 1, slog.New(slog.NewTextHandler(io.Discard, nil)))
	t.Cleanup(func() { mux.Close() })
	clients := newNodeClients(mux)
	t.Cleanup(clients.close)
	return newHeartbeatSender(clients, clients, period)
}

// sendBeat sends one heartbeat to addr on its own goroutine and reports
// when it was answered.
func sendBeat(s *heartbeatSender, addr string, urgent bool, due time.Time) <-chan error {
	out := make(chan error, 1)
	go func() {
		call := &heartbeatCall{req: &raft.AppendEntriesRequest{Term: 1}, resp: &raft.AppendEntriesResponse{},
			due: due, done: make(chan error, 1)}
		_, err := s.send(addr, call, urgent, nil)
		out <- err
	}()
	return out
}

func answeredWithin(t *testing.T, what string, ch <-chan error, within time.Duration) {
	t.Helper()
	select {
	case err := <-ch:
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	case <-time.After(within):
		t.Fatalf("%s: no answer within %v", what, within)
	}
}

// TestAnUrgentHeartbeatIsNotHeldBehindABatchInFlight: a heartbeat that
// confirms leadership for a read leaves as soon as the batch already in
// flight to the same peer returns, not at the next flush.
func TestAnUrgentHeartbeatIsNotHeldBehindABatchInFlight(t *testing.T) {
	peer := fakePeer(t, &slowNodeService{oldNodeService{&beatRecorder{beats: map[string][]uint64{}}}, 200 * time.Millisecond})
	s := newTestSender(t, time.Hour)
	first := sendBeat(s, peer, true, time.Time{})
	time.Sleep(50 * time.Millisecond) // the first batch is in flight
	second := sendBeat(s, peer, true, time.Time{})
	answeredWithin(t, "the first urgent heartbeat", first, 10*time.Second)
	answeredWithin(t, "the urgent heartbeat queued behind it", second, 10*time.Second)
}

// TestAHeartbeatLeavesByItsDueTimeWithoutWaitingForTheFlush: a heartbeat
// whose previous one left a period ago (its answer came late) goes out
// then, not at the next multiple of the period.
func TestAHeartbeatLeavesByItsDueTimeWithoutWaitingForTheFlush(t *testing.T) {
	peer := fakePeer(t, &oldNodeService{&beatRecorder{beats: map[string][]uint64{}}})
	s := newTestSender(t, time.Hour)
	answeredWithin(t, "a heartbeat due now", sendBeat(s, peer, false, time.Now().Add(50*time.Millisecond)), 10*time.Second)
	late := sendBeat(s, peer, false, time.Time{})
	select {
	case <-late:
		t.Fatal("a heartbeat with no due time left before the flush")
	case <-time.After(300 * time.Millisecond):
	}
	s.flushAll()
	answeredWithin(t, "the flushed heartbeat", late, 10*time.Second)
}

// TestAHeartbeatWaitingBehindABatchInFlightIsNotForgotten: a flush for
// another peer's overdue heartbeat skips a queue whose batch is in flight;
// what waits there still leaves once that batch returns.
func TestAHeartbeatWaitingBehindABatchInFlightIsNotForgotten(t *testing.T) {
	const period = 300 * time.Millisecond
	slow := fakePeer(t, &slowNodeService{oldNodeService{&beatRecorder{beats: map[string][]uint64{}}}, 200 * time.Millisecond})
	fast := fakePeer(t, &oldNodeService{&beatRecorder{beats: map[string][]uint64{}}})
	s := newTestSender(t, period)
	time.Sleep(untilNextFlush(time.Now(), period) + 5*time.Millisecond) // just after a flush instant
	start := time.Now()
	inFlight := sendBeat(s, slow, true, time.Time{}) // answered after 200ms
	time.Sleep(30 * time.Millisecond)
	behind := sendBeat(s, slow, false, start.Add(150*time.Millisecond))
	time.Sleep(20 * time.Millisecond)
	other := sendBeat(s, fast, false, start.Add(100*time.Millisecond)) // its flush comes first
	answeredWithin(t, "the batch in flight", inFlight, 5*time.Second)
	answeredWithin(t, "the other peer's heartbeat", other, 5*time.Second)
	answeredWithin(t, "the heartbeat waiting behind the batch", behind, 2*time.Second)
}
