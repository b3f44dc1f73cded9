package raftlog

import (
	"encoding/binary"
	"errors"
	"hash/crc32"
	"time"

	"github.com/hashicorp/raft"
)

// A segment file is a sequence of records, each
//
//	crc32c   uint32  over everything after this field
//	length   uint32  of the payload
//	kind     uint8
//	shard    uint32
//	payload  [length]byte
//
// little-endian. A record that is cut short or whose checksum does not match
// marks the end of the valid log: see replay.
const headerSize = 13

type recordKind uint8

const (
	// kindEntry carries one raft log entry. An entry whose index is not the
	// shard's last+1 truncates the shard's log first (conflict truncation,
	// or a fresh start after a snapshot); see shardState.store.
	kindEntry recordKind = 1
	// kindDeleteRange removes the entries min..max (inclusive).
	kindDeleteRange recordKind = 2
	// kindStable sets one key of the shard's stable store (term, vote).
	kindStable recordKind = 3
	// kindDrop forgets everything about the shard: its replica was removed.
	kindDrop recordKind = 4
	// kindMoved carries a copy of a live entry, written to free an old
	// segment. Moved entries take effect only together, when the
	// kindMovedEnd that closes them is read: a torn rewrite must not leave
	// a shard with some entries at their new place and some at the old.
	kindMoved    recordKind = 5
	kindMovedEnd recordKind = 6
)

// maxPayload bounds one record; raft entries are far smaller (the HTTP
// layer caps a request at a few MiB), so a larger length is corruption.
const maxPayload = 64 << 20

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

var errCorrupt = errors.New("raftlog: corrupt record")

// appendRecord appends one record with the given payload writer to buf.
func appendRecord(buf []byte, kind recordKind, shard uint32, payload func([]byte) []byte) []byte {
	start := len(buf)
	var zero [headerSize]byte
	buf = append(buf, zero[:]...)
	buf = payload(buf)
	h := buf[start:]
	binary.LittleEndian.PutUint32(h[4:], uint32(len(h)-headerSize))
	h[8] = byte(kind)
	binary.LittleEndian.PutUint32(h[9:], shard)
	binary.LittleEndian.PutUint32(h[0:], crc32.Checksum(h[4:], castagnoli))
	return buf
}

const entryFixed = 8 + 8 + 1 + 8 + 4 // index, term, type, appendedAt, data length

func entrySize(l *raft.Log) int { return headerSize + entryFixed + len(l.Data) + len(l.Extensions) }

func appendEntry(buf []byte, kind recordKind, shard uint32, l *raft.Log) []byte {
	return appendRecord(buf, kind, shard, func(b []byte) []byte {
		b = binary.LittleEndian.AppendUint64(b, l.Index)
		b = binary.LittleEndian.AppendUint64(b, l.Term)
		b = append(b, byte(l.Type))
		var at int64
		if !l.AppendedAt.IsZero() {
			at = l.AppendedAt.UnixNano()
		}
		b = binary.LittleEndian.AppendUint64(b, uint64(at))
		b = binary.LittleEndian.AppendUint32(b, uint32(len(l.Data)))
		b = append(b, l.Data...)
		return append(b, l.Extensions...)
	})
}

func appendDeleteRange(buf []byte, shard uint32, min, max uint64) []byte {
	return appendRecord(buf, kindDeleteRange, shard, func(b []byte) []byte {
		b = binary.LittleEndian.AppendUint64(b, min)
		return binary.LittleEndian.AppendUint64(b, max)
	})
}

func appendStable(buf []byte, shard uint32, key, val []byte) []byte {
	return appendRecord(buf, kindStable, shard, func(b []byte) []byte {
		b = binary.LittleEndian.AppendUint32(b, uint32(len(key)))
		b = append(b, key...)
		return append(b, val...)
	})
}

func appendEmpty(buf []byte, kind recordKind, shard uint32) []byte {
	return appendRecord(buf, kind, shard, func(b []byte) []byte { return b })
}

// record is one decoded record header; payload aliases the read buffer.
type record struct {
	kind    recordKind
	shard   uint32
	payload []byte
	size    int // header + payload
}

// parseRecord decodes the record at the start of b. It returns errCorrupt
// when b is too short for the record or the checksum does not match: the
// caller decides whether that is a torn tail or damage.
func parseRecord(b []byte) (record, error) {
	if len(b) < headerSize {
		return record{}, errCorrupt
	}
	n := binary.LittleEndian.Uint32(b[4:])
	if n > maxPayload || len(b) < headerSize+int(n) {
		return record{}, errCorrupt
	}
	end := headerSize + int(n)
	if crc32.Checksum(b[4:end], castagnoli) != binary.LittleEndian.Uint32(b) {
		return record{}, errCorrupt
	}
	return record{
		kind:    recordKind(b[8]),
		shard:   binary.LittleEndian.Uint32(b[9:]),
		payload: b[headerSize:end],
		size:    end,
	}, nil
}

// decodeEntry fills l from an entry payload, copying the data out of p.
func decodeEntry(p []byte, l *raft.Log) error {
	if len(p) < entryFixed {
		return errCorrupt
	}
	dataLen := int(binary.LittleEndian.Uint32(p[25:]))
	if entryFixed+dataLen > len(p) {
		return errCorrupt
	}
	l.Index = binary.LittleEndian.Uint64(p)
	l.Term = binary.LittleEndian.Uint64(p[8:])
	l.Type = raft.LogType(p[16])
	l.AppendedAt = time.Time{}
	if at := int64(binary.LittleEndian.Uint64(p[17:])); at != 0 {
		l.AppendedAt = time.Unix(0, at)
	}
	rest := p[entryFixed:]
	l.Data = nil
	if dataLen > 0 {
		l.Data = append([]byte(nil), rest[:dataLen]...)
	}
	l.Extensions = nil
	if len(rest) > dataLen {
		l.Extensions = append([]byte(nil), rest[dataLen:]...)
	}
	return nil
}

func entryIndex(p []byte) uint64 { return binary.LittleEndian.Uint64(p) }

func decodeDeleteRange(p []byte) (min, max uint64, err error) {
	if len(p) != 16 {
		return 0, 0, errCorrupt
	}
	return binary.LittleEndian.Uint64(p), binary.LittleEndian.Uint64(p[8:]), nil
}

func decodeStable(p []byte) (key, val []byte, err error) {
	if len(p) < 4 {
		return nil, nil, errCorrupt
	}
	k := int(binary.LittleEndian.Uint32(p))
	if 4+k > len(p) {
		return nil, nil, errCorrupt
	}
	return p[4 : 4+k], p[4+k:], nil
}
