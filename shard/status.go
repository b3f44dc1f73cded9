package shard

import (
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/raft"
)

// Replica is one member of a shard's raft configuration.
type Replica struct {
	ID       string `json:"id"`
	Address  string `json:"raftAddr"`
	Suffrage string `json:"suffrage"` // voter | nonvoter
	// Reported by a leader for each follower it has heard from: the
	// follower's last log index, and for how long that has not grown
	// while behind the leader's (0 when caught up or advancing).
	LastIndex      uint64  `json:"lastIndex,omitempty"`
	StalledSeconds float64 `json:"stalledSeconds,omitempty"`
}

// Status is a replica's view of its group.
type Status struct {
	ID           uint32    `json:"id"`
	State        string    `json:"state"` // Leader, Follower, Candidate, Shutdown
	Leader       string    `json:"leader"`
	LeaderAddr   string    `json:"leaderRaftAddr,omitempty"`
	Term         uint64    `json:"term"`
	LastIndex    uint64    `json:"lastIndex"`
	CommitIndex  uint64    `json:"commitIndex"`
	AppliedIndex uint64    `json:"appliedIndex"`
	Sessions     int       `json:"sessions"`
	Replicas     []Replica `json:"replicas"`
}

// Status reports the replica's raft state and configuration.
func (s *Shard) Status() Status {
	addr, id := s.raft.LeaderWithID()
	st := Status{
		ID: s.id, State: s.raft.State().String(), Leader: string(id), LeaderAddr: string(addr),
		Term: s.raft.CurrentTerm(), LastIndex: s.raft.LastIndex(), CommitIndex: s.raft.CommitIndex(),
		AppliedIndex: s.fsm.AppliedIndex(), Sessions: s.fsm.Len(), Replicas: []Replica{},
	}
	if f := s.raft.GetConfiguration(); f.Error() == nil {
		for _, srv := range f.Configuration().Servers {
			suffrage := "voter"
			if srv.Suffrage != raft.Voter {
				suffrage = "nonvoter"
			}
			r := Replica{ID: string(srv.ID), Address: string(srv.Address), Suffrage: suffrage}
			if st.State == raft.Leader.String() && string(srv.ID) != s.nodeID {
				if f, ok := s.transport.progress.progress(srv.ID, st.LastIndex, time.Now()); ok {
					r.LastIndex, r.StalledSeconds = f.LastLog, f.Stalled.Seconds()
					if f.Stalled == 0 || f.LastLog >= st.LastIndex {
						r.StalledSeconds = 0
					}
				}
			}
			st.Replicas = append(st.Replicas, r)
		}
	}
	return st
}

// SnapshotInfo is the size of the newest snapshot on disk and when it was
// taken; 0 and the zero time without one. The time comes from the
// snapshot's id, which raft's file snapshot store names TERM-INDEX-UNIXMILLI;
// it is zero if the id has another form.
func (s *Shard) SnapshotInfo() (size int64, taken time.Time) {
	metas, err := s.snapshots.List()
	if err != nil || len(metas) == 0 {
		return 0, time.Time{}
	}
	m := metas[0]
	if i := strings.LastIndexByte(m.ID, '-'); i >= 0 {
		if ms, err := strconv.ParseInt(m.ID[i+1:], 10, 64); err == nil && ms > 0 {
			taken = time.UnixMilli(ms)
		}
	}
	return m.Size, taken
}
