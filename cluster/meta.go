package cluster

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math/bits"
)

// Meta is what each node gossips about itself through memberlist. memberlist
// panics on metadata over 512 bytes, so it is a compact binary record with
// two bits per shard: whether the node holds a replica and whether it leads
// it. Both are hints (raft stays the truth; a stale hint costs one extra
// forward). At 1024 shards the bitmaps take 256 bytes, which leaves room for
// a 64-byte node id and two 64-byte addresses.
type Meta struct {
	NodeID          string
	RaftAddr        string
	HTTPAddr        string
	ClusterID       uint64 // 0 until the node belongs to a formed cluster
	Incarnation     uint64 // random per data dir; see Identity.Incarnation
	ShardCount      int
	BootstrapExpect int
	Formed          bool // the node belongs to a cluster (has an identity)
	Settled         bool // every founder of the cluster has formed
	Draining        bool
	OverQuota       bool   // the node is over its data quota; see quota.go
	Leads           []byte // bitmap: bit s set when the node leads shard s
	Hosts           []byte // bitmap: bit s set when the node holds a replica of shard s
}

const (
	metaVersion = 1
	// MetaMaxSize is memberlist's limit.
	MetaMaxSize = 512

	flagFormed   = 1 << 0
	flagSettled  = 1 << 1
	flagDraining = 1 << 2
	flagQuota    = 1 << 3
)

// Encode returns the binary form, or an error if it would exceed MetaMaxSize.
func (m *Meta) Encode() ([]byte, error) {
	b := make([]byte, 0, 64+len(m.NodeID)+len(m.RaftAddr)+len(m.HTTPAddr)+len(m.Leads))
	var flags byte
	if m.Formed {
		flags |= flagFormed
	}
	if m.Settled {
		flags |= flagSettled
	}
	if m.Draining {
		flags |= flagDraining
	}
	if m.OverQuota {
		flags |= flagQuota
	}
	b = append(b, metaVersion, flags)
	b = binary.BigEndian.AppendUint64(b, m.ClusterID)
	b = binary.BigEndian.AppendUint64(b, m.Incarnation)
	b = binary.BigEndian.AppendUint16(b, uint16(m.ShardCount))
	b = binary.BigEndian.AppendUint16(b, uint16(m.BootstrapExpect))
	for _, s := range []string{m.NodeID, m.RaftAddr, m.HTTPAddr, string(m.Leads), string(m.Hosts)} {
		if len(s) > 255 {
			return nil, fmt.Errorf("node metadata field of %d bytes is too long", len(s))
		}
		b = append(b, byte(len(s)))
		b = append(b, s...)
	}
	if len(b) > MetaMaxSize {
		return nil, fmt.Errorf("node metadata is %d bytes, over memberlist's limit of %d", len(b), MetaMaxSize)
	}
	return b, nil
}

var errBadMeta = errors.New("malformed node metadata")

// DecodeMeta parses what Encode wrote; like Encode, it refuses more than
// MetaMaxSize bytes.
func DecodeMeta(b []byte) (Meta, error) {
	var m Meta
	if len(b) < 22 || len(b) > MetaMaxSize || b[0] != metaVersion {
		return m, errBadMeta
	}
	flags := b[1]
	m.Formed, m.Settled, m.Draining = flags&flagFormed != 0, flags&flagSettled != 0, flags&flagDraining != 0
	m.OverQuota = flags&flagQuota != 0
	m.ClusterID = binary.BigEndian.Uint64(b[2:10])
	m.Incarnation = binary.BigEndian.Uint64(b[10:18])
	m.ShardCount = int(binary.BigEndian.Uint16(b[18:20]))
	m.BootstrapExpect = int(binary.BigEndian.Uint16(b[20:22]))
	rest := b[22:]
	var fields [5]string
	for i := range fields {
		if len(rest) < 1 || len(rest) < 1+int(rest[0]) {
			return m, errBadMeta
		}
		n := int(rest[0])
		fields[i] = string(rest[1 : 1+n])
		rest = rest[1+n:]
	}
	m.NodeID, m.RaftAddr, m.HTTPAddr = fields[0], fields[1], fields[2]
	m.Leads, m.Hosts = []byte(fields[3]), []byte(fields[4])
	return m, nil
}

// LeadsShard reports whether the node says it leads shard s.
func (m *Meta) LeadsShard(s uint32) bool { return bitSet(m.Leads, s) }

// HostsShard reports whether the node says it holds a replica of shard s.
func (m *Meta) HostsShard(s uint32) bool { return bitSet(m.Hosts, s) }

func bitSet(b []byte, s uint32) bool {
	i := int(s / 8)
	return i < len(b) && b[i]&(1<<(s%8)) != 0
}

// LeaderCount counts the shards the node says it leads.
func (m *Meta) LeaderCount() int { return bitCount(m.Leads) }

// HostCount counts the shards the node says it holds a replica of.
func (m *Meta) HostCount() int { return bitCount(m.Hosts) }

func bitCount(bitmap []byte) int {
	n := 0
	for _, b := range bitmap {
		n += bits.OnesCount8(b)
	}
	return n
}

func shardBitmap(shardCount int, leads func(uint32) bool) []byte {
	b := make([]byte, (shardCount+7)/8)
	for s := 0; s < shardCount; s++ {
		if leads(uint32(s)) {
			b[s/8] |= 1 << (s % 8)
		}
	}
	return b
}
