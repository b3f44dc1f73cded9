package shard

import (
	"encoding/binary"
	"errors"
	"time"

	"github.com/hashicorp/raft"
)

// Binary encodings of every node RPC message: appends, heartbeats,
// forwarded commands, read indexes and their answers. They are sent
// thousands of times a second, so they encode themselves as varints and
// length-prefixed bytes, and the node RPC codec (rpccodec.go) frames them;
// gob took about ten times the work.
//
// The layouts of raft's messages follow hashicorp/raft's structs field by
// field; wire_test.go fails when raft, or one of these types, gains a
// field that is not carried.

// errWire reports a message that does not decode.
var errWire = errors.New("node rpc: malformed message")

// maxWireCount bounds a decoded element count before anything is allocated.
const maxWireCount = 1 << 20

type wireWriter struct{ b []byte }

func (w *wireWriter) uint(v uint64)   { w.b = binary.AppendUvarint(w.b, v) }
func (w *wireWriter) int(v int64)     { w.b = binary.AppendVarint(w.b, v) }
func (w *wireWriter) bytes(v []byte)  { w.uint(uint64(len(v))); w.b = append(w.b, v...) }
func (w *wireWriter) string(v string) { w.uint(uint64(len(v))); w.b = append(w.b, v...) }
func (w *wireWriter) bool(v bool) {
	if v {
		w.b = append(w.b, 1)
	} else {
		w.b = append(w.b, 0)
	}
}

func (w *wireWriter) header(h raft.RPCHeader) {
	w.int(int64(h.ProtocolVersion))
	w.bytes(h.ID)
	w.bytes(h.Addr)
}

func (w *wireWriter) appendRequest(r *raft.AppendEntriesRequest) {
	w.header(r.RPCHeader)
	w.uint(r.Term)
	w.bytes(r.Leader)
	w.uint(r.PrevLogEntry)
	w.uint(r.PrevLogTerm)
	w.uint(r.LeaderCommitIndex)
	w.uint(uint64(len(r.Entries)))
	for _, e := range r.Entries {
		w.uint(e.Index)
		w.uint(e.Term)
		w.uint(uint64(e.Type))
		w.bytes(e.Data)
		w.bytes(e.Extensions)
		if e.AppendedAt.IsZero() {
			w.bool(false)
		} else {
			w.bool(true)
			w.int(e.AppendedAt.UnixNano())
		}
	}
}

func (w *wireWriter) appendResponse(r *raft.AppendEntriesResponse) {
	w.header(r.RPCHeader)
	w.uint(r.Term)
	w.uint(r.LastLog)
	w.bool(r.Success)
	w.bool(r.NoRetryBackoff)
}

// wireReader decodes what wireWriter wrote. The first error sticks; byte
// fields alias the reader's buffer, which the caller owns.
type wireReader struct {
	b   []byte
	err error
}

func (r *wireReader) fail() { r.err, r.b = errWire, nil }

func (r *wireReader) uint() uint64 {
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.fail()
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *wireReader) int() int64 {
	v, n := binary.Varint(r.b)
	if n <= 0 {
		r.fail()
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *wireReader) bytes() []byte {
	n := r.uint()
	if r.err != nil || n > uint64(len(r.b)) {
		r.fail()
		return nil
	}
	if n == 0 {
		return nil
	}
	v := r.b[:n:n]
	r.b = r.b[n:]
	return v
}

func (r *wireReader) bool() bool {
	if len(r.b) == 0 || r.b[0] > 1 {
		r.fail()
		return false
	}
	v := r.b[0] == 1
	r.b = r.b[1:]
	return v
}

// Smallest encodings of the elements of a list, so that a count is checked
// against what the bytes left can hold before anything is allocated: a
// forged count cannot make a small frame allocate many times its size.
const (
	minLogBytes       = 6  // index, term, type, data, extensions, no time
	minHeartbeatBytes = 10 // shard and an empty append request
	minBeatReplyBytes = 8  // an empty append response and no error
)

// count reads an element count no larger than the bytes left could hold
// with elements of at least minSize bytes.
func (r *wireReader) count(minSize int) int {
	n := r.uint()
	if r.err != nil || n > maxWireCount || n > uint64(len(r.b)/minSize) {
		r.fail()
		return 0
	}
	return int(n)
}

func (r *wireReader) header() raft.RPCHeader {
	return raft.RPCHeader{ProtocolVersion: raft.ProtocolVersion(r.int()), ID: r.bytes(), Addr: r.bytes()}
}

func (r *wireReader) appendRequest(req *raft.AppendEntriesRequest) {
	req.RPCHeader = r.header()
	req.Term = r.uint()
	req.Leader = r.bytes()
	req.PrevLogEntry = r.uint()
	req.PrevLogTerm = r.uint()
	req.LeaderCommitIndex = r.uint()
	n := r.count(minLogBytes)
	if n == 0 {
		req.Entries = nil
		return
	}
	logs := make([]raft.Log, n)
	req.Entries = make([]*raft.Log, n)
	for i := range logs {
		e := &logs[i]
		e.Index = r.uint()
		e.Term = r.uint()
		typ := r.uint()
		if typ > 255 {
			r.fail()
		}
		e.Type = raft.LogType(typ)
		e.Data = r.bytes()
		e.Extensions = r.bytes()
		if r.bool() {
			e.AppendedAt = time.Unix(0, r.int())
		}
		req.Entries[i] = e
	}
}

func (r *wireReader) appendResponse(resp *raft.AppendEntriesResponse) {
	resp.RPCHeader = r.header()
	resp.Term = r.uint()
	resp.LastLog = r.uint()
	resp.Success = r.bool()
	resp.NoRetryBackoff = r.bool()
}

// decodeWire runs decode over a copy of data (the codec reuses its buffer,
// and encoding.BinaryUnmarshaler may not keep data) and checks that it
// used every byte.
func decodeWire(data []byte, decode func(*wireReader)) error {
	r := &wireReader{b: append([]byte(nil), data...)}
	decode(r)
	if r.err == nil && len(r.b) != 0 {
		r.err = errWire
	}
	return r.err
}

// AppendBinary appends the encoded append to b.
func (a AppendArgs) AppendBinary(b []byte) ([]byte, error) {
	w := wireWriter{b: b}
	w.uint(uint64(a.Shard))
	w.appendRequest(&a.Req)
	return w.b, nil
}

// UnmarshalBinary decodes what AppendBinary encoded.
func (a *AppendArgs) UnmarshalBinary(data []byte) error {
	return decodeWire(data, func(r *wireReader) {
		a.Shard = uint32(r.uint())
		r.appendRequest(&a.Req)
	})
}

// AppendReply is raft's answer to an AppendArgs.
type AppendReply struct{ Resp raft.AppendEntriesResponse }

// AppendBinary appends the encoded answer to b.
func (a AppendReply) AppendBinary(b []byte) ([]byte, error) {
	w := wireWriter{b: b}
	w.appendResponse(&a.Resp)
	return w.b, nil
}

// UnmarshalBinary decodes what AppendBinary encoded.
func (a *AppendReply) UnmarshalBinary(data []byte) error {
	return decodeWire(data, func(r *wireReader) { r.appendResponse(&a.Resp) })
}

// AppendBinary appends the encoded heartbeats to b.
func (h HeartbeatArgs) AppendBinary(b []byte) ([]byte, error) {
	w := wireWriter{b: b}
	w.uint(uint64(len(h.Beats)))
	for i := range h.Beats {
		w.uint(uint64(h.Beats[i].Shard))
		w.appendRequest(&h.Beats[i].Req)
	}
	return w.b, nil
}

// UnmarshalBinary decodes what AppendBinary encoded.
func (h *HeartbeatArgs) UnmarshalBinary(data []byte) error {
	return decodeWire(data, func(r *wireReader) {
		h.Beats = make([]Heartbeat, r.count(minHeartbeatBytes))
		for i := range h.Beats {
			h.Beats[i].Shard = uint32(r.uint())
			r.appendRequest(&h.Beats[i].Req)
		}
	})
}

// AppendBinary appends the encoded answers to b.
func (h HeartbeatReply) AppendBinary(b []byte) ([]byte, error) {
	w := wireWriter{b: b}
	w.uint(uint64(len(h.Results)))
	for i := range h.Results {
		w.appendResponse(&h.Results[i].Resp)
		w.string(h.Results[i].Err)
	}
	return w.b, nil
}

// UnmarshalBinary decodes what AppendBinary encoded.
func (h *HeartbeatReply) UnmarshalBinary(data []byte) error {
	return decodeWire(data, h.read)
}

func (h *HeartbeatReply) read(r *wireReader) {
	h.Results = make([]HeartbeatResult, r.count(minBeatReplyBytes))
	for i := range h.Results {
		r.appendResponse(&h.Results[i].Resp)
		h.Results[i].Err = string(r.bytes())
	}
}

// AppendBinary appends the encoded answers and the leases granted to b.
func (h CommitHeartbeatReply) AppendBinary(b []byte) ([]byte, error) {
	b, _ = h.HeartbeatReply.AppendBinary(b)
	w := wireWriter{b: b}
	w.uint(uint64(len(h.Leases)))
	for _, l := range h.Leases {
		w.int(int64(l))
	}
	return w.b, nil
}

// UnmarshalBinary decodes what AppendBinary encoded.
func (h *CommitHeartbeatReply) UnmarshalBinary(data []byte) error {
	return decodeWire(data, func(r *wireReader) {
		h.HeartbeatReply.read(r)
		h.Leases = make([]time.Duration, r.count(1))
		for i := range h.Leases {
			h.Leases[i] = time.Duration(r.int())
		}
	})
}

// AppendBinary appends the encoded forwarded command to b.
func (a ApplyArgs) AppendBinary(b []byte) ([]byte, error) {
	w := wireWriter{b: b}
	w.uint(uint64(a.Shard))
	w.bytes(a.Command)
	return w.b, nil
}

// UnmarshalBinary decodes what AppendBinary encoded.
func (a *ApplyArgs) UnmarshalBinary(data []byte) error {
	return decodeWire(data, func(r *wireReader) {
		a.Shard = uint32(r.uint())
		a.Command = r.bytes()
	})
}

// AppendBinary appends the encoded answer to a forwarded command to b.
func (a ApplyReply) AppendBinary(b []byte) ([]byte, error) {
	w := wireWriter{b: b}
	w.bytes(a.Result)
	w.string(a.Code)
	w.string(a.LeaderID)
	w.string(a.LeaderAddr)
	w.string(a.Err)
	return w.b, nil
}

// UnmarshalBinary decodes what AppendBinary encoded.
func (a *ApplyReply) UnmarshalBinary(data []byte) error {
	return decodeWire(data, func(r *wireReader) {
		a.Result = r.bytes()
		a.Code = string(r.bytes())
		a.LeaderID = string(r.bytes())
		a.LeaderAddr = string(r.bytes())
		a.Err = string(r.bytes())
	})
}

// AppendBinary appends the encoded read-index request to b.
func (a ReadIndexArgs) AppendBinary(b []byte) ([]byte, error) {
	w := wireWriter{b: b}
	w.uint(uint64(a.Shard))
	return w.b, nil
}

// UnmarshalBinary decodes what AppendBinary encoded.
func (a *ReadIndexArgs) UnmarshalBinary(data []byte) error {
	return decodeWire(data, func(r *wireReader) { a.Shard = uint32(r.uint()) })
}

// AppendBinary appends the encoded TimeoutNow to b.
func (a TimeoutNowArgs) AppendBinary(b []byte) ([]byte, error) {
	w := wireWriter{b: b}
	w.uint(uint64(a.Shard))
	w.uint(a.Term)
	w.header(a.Req.RPCHeader)
	return w.b, nil
}

// UnmarshalBinary decodes what AppendBinary encoded.
func (a *TimeoutNowArgs) UnmarshalBinary(data []byte) error {
	return decodeWire(data, func(r *wireReader) {
		a.Shard = uint32(r.uint())
		a.Term = r.uint()
		a.Req.RPCHeader = r.header()
	})
}

// AppendBinary appends the empty answer (nothing) to b.
func (TimeoutNowReply) AppendBinary(b []byte) ([]byte, error) { return b, nil }

// UnmarshalBinary decodes what AppendBinary encoded.
func (a *TimeoutNowReply) UnmarshalBinary(data []byte) error {
	return decodeWire(data, func(*wireReader) {})
}

// AppendBinary appends the encoded read index, or why there is none, to b.
func (a ReadIndexReply) AppendBinary(b []byte) ([]byte, error) {
	w := wireWriter{b: b}
	w.uint(a.Index)
	w.bool(a.NotLeader)
	w.string(a.LeaderID)
	w.string(a.LeaderAddr)
	w.string(a.Err)
	return w.b, nil
}

// UnmarshalBinary decodes what AppendBinary encoded.
func (a *ReadIndexReply) UnmarshalBinary(data []byte) error {
	return decodeWire(data, func(r *wireReader) {
		a.Index = r.uint()
		a.NotLeader = r.bool()
		a.LeaderID = string(r.bytes())
		a.LeaderAddr = string(r.bytes())
		a.Err = string(r.bytes())
	})
}
