package cluster

import (
	"bytes"
	"testing"
)

// FuzzDecodeMeta: gossip metadata comes from any host that reaches the
// gossip port (before encryption is configured) and from every member. It
// never panics the decoder, and whatever decodes encodes back to bytes that
// decode to the same metadata.
func FuzzDecodeMeta(f *testing.F) {
	full := Meta{NodeID: "n1", RaftAddr: "10.0.0.1:7000", HTTPAddr: "10.0.0.1:8080", ClusterID: 42, Incarnation: 7,
		ShardCount: 16, BootstrapExpect: 3, Formed: true, Settled: true, Draining: true, OverQuota: true,
		Leads: shardBitmap(16, func(s uint32) bool { return s%3 == 0 }), Hosts: shardBitmap(16, func(uint32) bool { return true })}
	for _, m := range []Meta{{}, {NodeID: "n2"}, full} {
		b, err := m.Encode()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte{metaVersion})
	f.Add(bytes.Repeat([]byte{0xff}, 600))
	f.Fuzz(func(t *testing.T, in []byte) {
		m, err := DecodeMeta(in)
		if err != nil {
			return
		}
		out, err := m.Encode()
		if err != nil {
			t.Fatalf("decoded %+v does not encode: %v", m, err)
		}
		again, err := DecodeMeta(out)
		if err != nil {
			t.Fatalf("re-encoded metadata does not decode: %v", err)
		}
		if again.NodeID != m.NodeID || again.ClusterID != m.ClusterID || again.Formed != m.Formed || again.OverQuota != m.OverQuota ||
			!bytes.Equal(again.Leads, m.Leads) || !bytes.Equal(again.Hosts, m.Hosts) || again.HTTPAddr != m.HTTPAddr {
			t.Fatalf("round trip changed %+v into %+v", m, again)
		}
		for s := uint32(0); s < 2048; s += 97 {
			_ = m.LeadsShard(s) // out-of-range shards must not panic
			_ = m.HostsShard(s)
		}
	})
}
