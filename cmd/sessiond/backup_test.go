package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/sessiond/sessiond/backup"
)

var backupClient = &http.Client{Timeout: 2 * time.Minute}

// takeBackup GETs /v1/backup from p and verifies the archive.
func takeBackup(t *testing.T, p *proc, query string) ([]byte, backup.Manifest) {
	t.Helper()
	resp, err := backupClient.Get(p.url("/v1/backup" + query))
	if err != nil {
		t.Fatalf("backup: %v", err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK || err != nil {
		t.Fatalf("backup = %d %s (%v)", resp.StatusCode, data, err)
	}
	a, err := backup.Read(bytes.NewReader(data), "")
	if err != nil {
		t.Fatalf("the backup does not verify: %v", err)
	}
	return data, a.Manifest
}

// restoreBackup POSTs an archive to p's /v1/restore.
func restoreBackup(t *testing.T, p *proc, data []byte) {
	t.Helper()
	resp, err := backupClient.Post(p.url("/v1/restore"), "application/x-tar", bytes.NewReader(data))
	if err != nil {
		t.Fatalf("restore: %v", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("restore = %d %s", resp.StatusCode, body)
	}
}

// ack is one acknowledged append.
type ack struct {
	session, id string
	at          time.Time
}

// writeLoad appends messages with fixed ids to its own sessions through
// every node in turn until stop is closed, retrying a 503 with the same id
// (safe: an append is idempotent by id), and records every acknowledgement
// with the time the answer arrived.
func writeLoad(procs []*proc, writers int, stop <-chan struct{}) func() []ack {
	var mu sync.Mutex
	var acks []ack
	var wg sync.WaitGroup
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; ; i++ {
				session, id := fmt.Sprintf("load-%d-%d", w, i%5), fmt.Sprintf("w%d-m%d", w, i)
				for attempt := 0; ; attempt++ {
					select {
					case <-stop:
						return
					default:
					}
					code, _ := procs[(w+i+attempt)%len(procs)].appendMessage(session, id)
					if code == http.StatusCreated || code == http.StatusOK {
						mu.Lock()
						acks = append(acks, ack{session, id, time.Now()})
						mu.Unlock()
						break
					}
					time.Sleep(20 * time.Millisecond)
				}
			}
		}(w)
	}
	return func() []ack {
		wg.Wait()
		return acks
	}
}

// sessionMessages reads a session's message ids on p (linearizable),
// retrying a 503 as a client would: a restore makes every shard's
// followers install a snapshot, and elections may follow.
func sessionMessages(t *testing.T, p *proc, session string) []string {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		code, body := get(p.url("/api/chat/session/" + session + "/messages?limit=1000"))
		if code == http.StatusOK {
			var page struct{ Messages []message }
			if err := json.Unmarshal(body, &page); err != nil {
				t.Fatalf("decode %s: %v", body, err)
			}
			var ids []string
			for _, m := range page.Messages {
				ids = append(ids, m.ID)
			}
			return ids
		}
		if code != http.StatusServiceUnavailable || time.Now().After(deadline) {
			t.Fatalf("GET messages of %s = %d %s", session, code, body)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// A backup taken while clients write holds every write acknowledged
// before the backup request began; restored into a fresh 3-node cluster,
// every such write is there, and each session is a prefix of its history
// on the source cluster (nothing invented, nothing reordered).
func TestBackupUnderWriteLoadRestoresEveryWriteAcknowledgedBeforeIt(t *testing.T) {
	// Two replicas of each shard on three nodes: the node asked holds only
	// some shards and fetches the others from their nodes.
	src := startCluster(t, 3, 8, "--replicas", "2")
	stop := make(chan struct{})
	wait := writeLoad(src, 4, stop)
	time.Sleep(1500 * time.Millisecond)

	backupStart := time.Now()
	data, m := takeBackup(t, src[0], "")
	time.Sleep(300 * time.Millisecond)
	close(stop)
	acks := wait()
	if m.ShardCount != 8 || m.Consistency != "linearizable" {
		t.Fatalf("manifest = %+v", m)
	}

	dst := startCluster(t, 3, 8)
	restoreBackup(t, dst[1], data)

	sessions := map[string]bool{}
	for _, a := range acks {
		sessions[a.session] = true
	}
	restored := map[string]bool{}
	for s := range sessions {
		got := sessionMessages(t, dst[2], s)
		all := sessionMessages(t, src[1], s)
		if len(got) > len(all) {
			t.Fatalf("%s restored with %d messages, the source holds %d", s, len(got), len(all))
		}
		for i, id := range got {
			if id != all[i] {
				t.Fatalf("%s message %d restored as %s, the source holds %s", s, i+1, id, all[i])
			}
			restored[s+"/"+id] = true
		}
	}
	var before, after, afterPresent int
	for _, a := range acks {
		if a.at.Before(backupStart) {
			before++
			if !restored[a.session+"/"+a.id] {
				t.Errorf("%s/%s was acknowledged before the backup began but is not restored", a.session, a.id)
			}
		} else {
			after++
			if restored[a.session+"/"+a.id] {
				afterPresent++
			}
		}
	}
	if before == 0 || after == 0 {
		t.Fatalf("the load acknowledged %d writes before the backup and %d during or after it; the test needs both", before, after)
	}
	t.Logf("%d writes acknowledged before the backup, all restored; %d during or after it, %d of them restored", before, after, afterPresent)
}

// A shard whose quorum is gone cannot be backed up linearizably, but the
// surviving replica's state can be backed up at consistency=stale and
// restored into a new cluster: the documented way back from losing a
// majority of a shard's replicas.
func TestAShardThatLostItsQuorumIsRestoredFromItsSurvivingReplica(t *testing.T) {
	src := startCluster(t, 3, 4)
	var ids []string
	for i := 0; i < 8; i++ {
		id := fmt.Sprintf("q-%d", i)
		if code, _ := src[0].appendMessage(id, "m1"); code != http.StatusCreated {
			t.Fatalf("append to %s = %d", id, code)
		}
		ids = append(ids, id)
	}
	survivor := src[2]
	// Wait until the survivor has applied every acknowledged write, as an
	// operator would check with stale reads before giving up the others.
	deadline := time.Now().Add(20 * time.Second)
	for _, id := range ids {
		for {
			code, body := get(survivor.url("/api/chat/session/" + id + "?consistency=stale"))
			if code == http.StatusOK && bytes.Contains(body, []byte(`"m1"`)) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("the survivor never applied %s: %d %s", id, code, body)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	src[0].signal(syscall.SIGKILL)
	src[1].signal(syscall.SIGKILL)
	// A leader serves linearizable reads by its read lease for up to half
	// the heartbeat timeout (100ms here) after its followers last answered,
	// rightly: no other leader can be elected sooner. Wait that out.
	time.Sleep(300 * time.Millisecond)

	// The node waits a while for a leader before it gives up.
	code, body := getWith(backupClient, survivor.url("/v1/backup"))
	if code != http.StatusServiceUnavailable || errorCode(body) == "" {
		t.Fatalf("a linearizable backup without a quorum = %d %.200s, want a JSON error", code, body)
	}
	data, m := takeBackup(t, survivor, "?consistency=stale")
	if m.Consistency != "stale" {
		t.Fatalf("manifest consistency %q", m.Consistency)
	}

	dst := startCluster(t, 3, 4)
	restoreBackup(t, dst[0], data)
	for _, id := range ids {
		if got := sessionMessages(t, dst[1], id); len(got) != 1 || got[0] != "m1" {
			t.Fatalf("%s restored with messages %v, want [m1]", id, got)
		}
	}
	var view struct{ Shards []struct{ Leader string } }
	_, vb := get(dst[2].url("/v1/cluster"))
	if json.Unmarshal(vb, &view) != nil || len(view.Shards) != 4 {
		t.Fatalf("/v1/cluster of the new cluster: %s", vb)
	}
}
