package main

import (
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"
	"github.com/hashicorp/raft"

	"github.com/sessiond/sessiond/certs"
	"github.com/sessiond/sessiond/cluster"
)

// securedCluster starts three nodes with mutual TLS, an encrypted gossip
// key and tokens, as an operator following SECURITY.md would, and returns
// them with the directory holding the CA and node certificates.
func securedCluster(t *testing.T) ([]*proc, string) {
	t.Helper()
	dir := t.TempDir()
	if err := certs.WriteDir(dir, []string{"n1", "n2", "n3"}, nil, time.Hour, false); err != nil {
		t.Fatal(err)
	}
	key := make([]byte, 32)
	rand.Read(key)
	tokens := writeTokenFile(t)
	tlsClient := httpsClient(t, filepath.Join(dir, certs.CAFile), nil)
	procs := startClusterWith(t, 3, 4, func(i int, p *proc) {
		f := certs.DirFiles(dir, fmt.Sprintf("n%d", i+1))
		p.extraArgs = append(p.extraArgs, "--tls-ca", f.CA, "--tls-cert", f.Cert, "--tls-key", f.Key,
			"--gossip-key", base64.StdEncoding.EncodeToString(key), "--token-file", tokens)
		p.tlsClient = tlsClient
	})
	return procs, dir
}

// httpsClient trusts the CA in caFile and presents cert when given.
func httpsClient(t *testing.T, caFile string, cert *tls.Certificate) *http.Client {
	t.Helper()
	pem, err := os.ReadFile(caFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	conf := &tls.Config{RootCAs: pool}
	if cert != nil {
		conf.Certificates = []tls.Certificate{*cert}
	}
	return &http.Client{Timeout: 15 * time.Second, Transport: &http.Transport{TLSClientConfig: conf}}
}

// startClusterWith starts n joined nodes n1..nn, letting setup add flags to
// each, and waits until every one is ready.
func startClusterWith(t *testing.T, n, shards int, setup func(i int, p *proc)) []*proc {
	t.Helper()
	procs := make([]*proc, n)
	var join []string
	for i := range procs {
		procs[i] = newProc(t, shards)
		join = append(join, fmt.Sprintf("127.0.0.1:%d", procs[i].gossip))
	}
	for i, p := range procs {
		p.extraArgs = []string{"--node-id", fmt.Sprintf("n%d", i+1), "--bootstrap-expect", fmt.Sprint(n),
			"--join", strings.Join(join, ","), "--raft-heartbeat", "100ms"}
		if setup != nil {
			setup(i, p)
		}
		p.startNoWait()
	}
	for _, p := range procs {
		p.waitReady()
	}
	return procs
}

type clusterView struct {
	Members []struct{ ID, State string }
	Shards  []struct {
		ID     uint32
		Leader string
		Term   uint64
	}
}

func (p *proc) clusterView(t *testing.T) clusterView {
	t.Helper()
	code, body := doWith(t, p.client(), http.MethodGet, p.url("/v1/cluster"), adminToken, "")
	if code != http.StatusOK {
		t.Fatalf("GET /v1/cluster = %d %s", code, body)
	}
	var v clusterView
	if err := json.Unmarshal(body, &v); err != nil {
		t.Fatal(err)
	}
	return v
}

// An attacker on the network of a secured cluster gets nowhere: HTTPS
// requests without a token are refused, a raft connection without a
// certificate from the cluster CA is closed before any RPC is read (a
// forged AppendEntries that a plain cluster would accept fails), a
// certificate from another CA is refused, and a gossip member without the
// key never joins. Meanwhile the nodes forward requests, move data and
// answer clients over their own mutual TLS.
func TestSecuredClusterRefusesAttackersAndServesClients(t *testing.T) {
	procs, certDir := securedCluster(t)
	n1 := procs[0]
	hc := n1.client()

	// HTTPS without a token, or with the wrong scope.
	if code, body := doWith(t, hc, http.MethodPost, n1.url("/api/chat/session/victim/messages"), "", `{"role":"user","content":"x"}`); code != http.StatusUnauthorized {
		t.Fatalf("append without a token = %d %s", code, body)
	}
	if code, body := doWith(t, hc, http.MethodPost, n1.url("/v1/nodes/n2/drain"), dataToken, ""); code != http.StatusForbidden {
		t.Fatalf("drain with a data token = %d %s", code, body)
	}
	if code, body := doWith(t, hc, http.MethodPost, n1.url("/internal/v1/shards/0/replica"), "", ""); code != http.StatusUnauthorized {
		t.Fatalf("internal route without credentials = %d %s", code, body)
	}
	// Clients with a token are served on every node, forwarded to leaders
	// over mutual TLS where needed.
	for i, p := range procs {
		for j := range 4 {
			path := fmt.Sprintf("/api/chat/session/s-%d-%d/messages", i, j)
			if code, body := doWith(t, hc, http.MethodPost, p.url(path), dataToken, `{"role":"user","content":"hello"}`); code != http.StatusCreated {
				t.Fatalf("append on n%d = %d %s", i+1, code, body)
			}
		}
	}
	before := n1.clusterView(t)

	// Raft port, plain TCP: the preamble and a forged AppendEntries from a
	// would-be leader with a higher term, as against an unsecured node.
	id, err := cluster.LoadIdentity(n1.dir)
	if err != nil {
		t.Fatal(err)
	}
	raftAddr := fmt.Sprintf("127.0.0.1:%d", n1.raft)
	for shard := uint32(0); shard < 4; shard++ {
		trans := raft.NewNetworkTransport(&plainStream{clusterID: id.ClusterID, shard: shard}, 1, 2*time.Second, io.Discard)
		req := &raft.AppendEntriesRequest{RPCHeader: raft.RPCHeader{ProtocolVersion: raft.ProtocolVersionMax, ID: []byte("attacker"), Addr: []byte("attacker")},
			Term: before.Shards[shard].Term + 100, PrevLogEntry: 0, PrevLogTerm: 0,
			Entries: []*raft.Log{{Index: 1 << 20, Term: before.Shards[shard].Term + 100, Type: raft.LogCommand, Data: []byte("forged")}}}
		var resp raft.AppendEntriesResponse
		err := trans.AppendEntries("n1", raft.ServerAddress(raftAddr), req, &resp)
		trans.Close()
		if err == nil {
			t.Fatalf("shard %d: a forged AppendEntries over plain TCP was answered: %+v", shard, resp)
		}
	}
	// Raft port, TLS without a client certificate, and with one from
	// another CA: the handshake fails.
	otherDir := t.TempDir()
	if err := certs.WriteDir(otherDir, []string{"n1"}, nil, time.Hour, false); err != nil {
		t.Fatal(err)
	}
	foreign, err := tls.LoadX509KeyPair(filepath.Join(otherDir, "n1.pem"), filepath.Join(otherDir, "n1-key.pem"))
	if err != nil {
		t.Fatal(err)
	}
	for name, conf := range map[string]*tls.Config{
		"no client certificate":         {InsecureSkipVerify: true},
		"a certificate from another CA": {InsecureSkipVerify: true, Certificates: []tls.Certificate{foreign}},
	} {
		if err := tlsPreamble(raftAddr, conf, id.ClusterID); err == nil {
			t.Fatalf("raft port over TLS with %s: the connection was kept open", name)
		}
	}
	// The client port does not take another CA's certificate as a node's.
	if resp, err := httpsClient(t, filepath.Join(certDir, certs.CAFile), &foreign).Get(n1.url("/v1/cluster")); err == nil {
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			t.Fatal("a certificate from another CA was taken for a node's on the client port")
		}
	}

	// Gossip: a memberlist node without the key cannot join.
	mc := memberlist.DefaultLANConfig()
	mc.Name, mc.BindAddr, mc.BindPort = "intruder", "127.0.0.1", 0
	mc.LogOutput = io.Discard
	ml, err := memberlist.Create(mc)
	if err != nil {
		t.Fatal(err)
	}
	defer ml.Shutdown()
	if _, err := ml.Join([]string{fmt.Sprintf("127.0.0.1:%d", n1.gossip)}); err == nil && ml.NumMembers() > 1 {
		t.Fatalf("a gossip member without the key joined: it sees %d members", ml.NumMembers())
	}

	// Nothing changed: no replica took the forged term (leadership may
	// still move between the nodes as they balance it), no member was
	// added, and the cluster still serves.
	time.Sleep(2 * time.Second)
	after := n1.clusterView(t)
	for i, s := range after.Shards {
		if s.Term >= before.Shards[i].Term+100 || s.Leader == "" || s.Leader == "attacker" {
			t.Errorf("shard %d: term %d leader %q after the attacks, was term %d", s.ID, s.Term, s.Leader, before.Shards[i].Term)
		}
	}
	for _, m := range after.Members {
		if m.ID != "n1" && m.ID != "n2" && m.ID != "n3" {
			t.Errorf("member %q appeared", m.ID)
		}
	}
	if code, body := doWith(t, hc, http.MethodGet, procs[2].url("/api/chat/session/s-0-0/messages"), dataToken, ""); code != http.StatusOK || strings.Contains(string(body), "forged") {
		t.Fatalf("read after the attacks = %d %s", code, body)
	}
}

// plainStream is what an attacker without a certificate can do: dial the
// raft port in the clear and write a valid preamble.
type plainStream struct {
	clusterID uint64
	shard     uint32
}

func (s *plainStream) Dial(addr raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	c, err := net.DialTimeout("tcp", string(addr), timeout)
	if err != nil {
		return nil, err
	}
	_, err = c.Write(preamble(s.clusterID, s.shard))
	return c, err
}
func (s *plainStream) Accept() (net.Conn, error) { select {} }
func (s *plainStream) Close() error              { return nil }
func (s *plainStream) Addr() net.Addr            { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)} }

func preamble(clusterID uint64, shard uint32) []byte {
	b := []byte{'S', 'S', 'D', 1}
	b = binary.BigEndian.AppendUint64(b, clusterID)
	return binary.BigEndian.AppendUint32(b, shard)
}

// tlsPreamble opens a TLS connection with conf, writes a preamble and
// reports whether the connection then stayed open for a moment.
func tlsPreamble(addr string, conf *tls.Config, clusterID uint64) error {
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: 2 * time.Second}, "tcp", addr, conf)
	if err != nil {
		return err
	}
	defer c.Close()
	if _, err := c.Write(preamble(clusterID, 0)); err != nil {
		return err
	}
	_ = c.SetReadDeadline(time.Now().Add(time.Second))
	_, err = c.Read(make([]byte, 1))
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		return nil // still open: the preamble was taken
	}
	return err
}
