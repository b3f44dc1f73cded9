package shard_test

import (
	"net"
	"strings"
	"testing"

	"github.com/sessiond/sessiond/fsm"
	"github.com/sessiond/sessiond/shard"
)

// TestDataDirectoryKeepsTheLogStoreItWasMadeWith: a node started without
// naming a log store runs the one its data directory holds, so a directory
// made with per-shard logs keeps its data; naming the other kind fails
// rather than starting with empty logs.
func TestDataDirectoryKeepsTheLogStoreItWasMadeWith(t *testing.T) {
	for _, made := range []string{shard.LogStorePerShard, shard.LogStoreShared} {
		t.Run(made, func(t *testing.T) {
			kind := made
			h, s := single(t, func(c *shard.HostConfig) { c.LogStore = kind })
			if got := h.host.LogStore(); got != made {
				t.Fatalf("host runs %q, asked for %q", got, made)
			}
			mustAppend(t, s, "kept", "m1")
			h.stop()

			other := shard.LogStoreShared
			if made == shard.LogStoreShared {
				other = shard.LogStorePerShard
			}
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			_, err = shard.NewHost(shard.HostConfig{
				NodeID: h.id, DataDir: h.dir, Listener: ln, Advertise: ln.Addr().String(),
				ShardCount: 1, Limits: fsm.DefaultLimits, Timing: testTiming, Logger: testLogger(),
				LogStore: other,
			})
			if err == nil || !strings.Contains(err.Error(), "--log-store "+made) {
				t.Fatalf("asking for %q on a %q directory: %v, want an error naming --log-store %s", other, made, err, made)
			}

			kind = "" // what the directory holds
			h.start()
			if got := h.host.LogStore(); got != made {
				t.Fatalf("restarted with %q, want %q", got, made)
			}
			s = h.open(0)
			waitLeader(t, s)
			if sess, ok := s.FSM().Get("kept"); !ok || len(sess.Messages()) != 1 {
				t.Fatalf("session after restart: %+v, %v", sess, ok)
			}
		})
	}
}
