package shard

import (
	"github.com/hashicorp/raft"
)

// Replica is one member of a shard's raft configuration.
type Replica struct {
	ID       string `json:"id"`
	Address  string `json:"raftAddr"`
	Suffrage string `json:"suffrage"` // voter | nonvoter
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
			st.Replicas = append(st.Replicas, Replica{ID: string(srv.ID), Address: string(srv.Address), Suffrage: suffrage})
		}
	}
	return st
}
