package shard

import (
	"bufio"
	"encoding"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net/rpc"
)

// The node RPC codec: net/rpc's calls without gob. gob describes types on
// every connection and reflects over every message, and an idle node
// spent a third of its CPU in it for heartbeats and commit-index appends.
// Every node RPC message encodes itself (wire.go), so a frame is just:
//
//	uvarint  length of the rest of the frame
//	bytes    service method ("Node.AppendEntries")
//	uvarint  sequence number
//	bytes    error (responses only; "" when none)
//	...      the body, as its AppendBinary wrote it
//
// (bytes: a uvarint length, then the bytes.) net/rpc serializes the writes
// of a client and of a server connection, and each frame leaves in one
// Write, which nodeConn coalesces with the others waiting.

// maxFrameBytes bounds a frame before it is read: the largest message is a
// forwarded command, far below it.
const maxFrameBytes = maxUnsentBytes

var errFrameTooLarge = errors.New("node rpc: frame too large")

// wireCodec is both ends of net/rpc's codec over one connection.
type wireCodec struct {
	conn io.ReadWriteCloser
	r    *bufio.Reader
	buf  []byte // the last frame read, reused for the next up to maxKeptFrameBytes
	body []byte // the part of buf after the header
	wbuf []byte // the last frame written, reused likewise
}

func newWireCodec(conn io.ReadWriteCloser) *wireCodec {
	return &wireCodec{conn: conn, r: bufio.NewReaderSize(conn, 32<<10)}
}

// readFrame reads one frame and returns a reader over it.
func (c *wireCodec) readFrame() (*wireReader, error) {
	n, err := binary.ReadUvarint(c.r)
	if err != nil {
		return nil, err
	}
	if n > maxFrameBytes {
		return nil, errFrameTooLarge
	}
	if n > maxKeptFrameBytes {
		// A rare large frame grows its own buffer as its bytes arrive, so
		// a length alone allocates nothing, and it is not kept.
		buf, err := io.ReadAll(io.LimitReader(c.r, int64(n)))
		if err == nil && uint64(len(buf)) < n {
			err = io.ErrUnexpectedEOF
		}
		if err != nil {
			return nil, err
		}
		return &wireReader{b: buf}, nil
	}
	if uint64(cap(c.buf)) < n {
		c.buf = make([]byte, n, max(n, 4<<10))
	}
	buf := c.buf[:n]
	if _, err := io.ReadFull(c.r, buf); err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return nil, err
	}
	return &wireReader{b: buf}, nil
}

// maxKeptFrameBytes is the largest frame buffer a connection keeps for the
// next frame; appends sent over node RPC are at most 64 KiB.
const maxKeptFrameBytes = 256 << 10

// writeFrame writes header and body as one frame, in one Write. The frame
// is built in the codec's write buffer: net/rpc lets one call at a time
// write on a connection, client and server alike, and Write does not keep
// the bytes it is given (io.Writer), so the buffer serves the next frame.
func (c *wireCodec) writeFrame(method string, seq uint64, errMsg *string, body any) error {
	// Room for the length prefix, then the header and the body; the prefix
	// is written last, right before the header.
	const room = binary.MaxVarintLen64
	if cap(c.wbuf) < room {
		c.wbuf = make([]byte, 0, 4<<10)
	}
	w := wireWriter{b: c.wbuf[:room]}
	w.string(method)
	w.uint(seq)
	if errMsg != nil {
		w.string(*errMsg)
	}
	if body != nil && (errMsg == nil || *errMsg == "") {
		a, ok := body.(encoding.BinaryAppender)
		if !ok {
			return fmt.Errorf("node rpc: %T has no binary encoding", body)
		}
		var err error
		if w.b, err = a.AppendBinary(w.b); err != nil {
			return err
		}
	}
	var prefix [binary.MaxVarintLen64]byte
	n := binary.PutUvarint(prefix[:], uint64(len(w.b)-room))
	start := room - n
	copy(w.b[start:], prefix[:n])
	_, err := c.conn.Write(w.b[start:])
	if cap(w.b) <= maxKeptFrameBytes {
		c.wbuf = w.b[:0]
	} else {
		c.wbuf = nil // a rare large frame's buffer is not kept
	}
	return err
}

// readBody decodes the body of the frame last read into body; nil skips it.
func (c *wireCodec) readBody(body any) error {
	data := c.body
	c.body = nil
	if body == nil {
		return nil
	}
	u, ok := body.(encoding.BinaryUnmarshaler)
	if !ok {
		return fmt.Errorf("node rpc: %T has no binary decoding", body)
	}
	return u.UnmarshalBinary(data)
}

func (c *wireCodec) ReadRequestHeader(req *rpc.Request) error {
	r, err := c.readFrame()
	if err != nil {
		return err
	}
	req.ServiceMethod = string(r.bytes())
	req.Seq = r.uint()
	if r.err != nil {
		return r.err
	}
	c.body = r.b
	return nil
}

func (c *wireCodec) ReadRequestBody(body any) error { return c.readBody(body) }

func (c *wireCodec) WriteResponse(resp *rpc.Response, body any) error {
	return c.writeFrame(resp.ServiceMethod, resp.Seq, &resp.Error, body)
}

func (c *wireCodec) WriteRequest(req *rpc.Request, body any) error {
	return c.writeFrame(req.ServiceMethod, req.Seq, nil, body)
}

func (c *wireCodec) ReadResponseHeader(resp *rpc.Response) error {
	r, err := c.readFrame()
	if err != nil {
		return err
	}
	resp.ServiceMethod = string(r.bytes())
	resp.Seq = r.uint()
	resp.Error = string(r.bytes())
	if r.err != nil {
		return r.err
	}
	c.body = r.b
	return nil
}

func (c *wireCodec) ReadResponseBody(body any) error { return c.readBody(body) }

func (c *wireCodec) Close() error { return c.conn.Close() }
