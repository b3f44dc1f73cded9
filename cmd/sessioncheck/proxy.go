package main

// Partitions without root. When network namespaces are not available the
// local target puts a small proxy in front of every port a node's peers
// use: raft, gossip (memberlist: TCP and UDP on one port) and HTTP (nodes
// forward requests to a shard's leader over it). A node listens on
// realHost:P and advertises proxyHost:P; the proxy listens on proxyHost:P
// and forwards to realHost:P. Since sessiond advertises one host for all
// its ports, every connection and datagram between two nodes passes
// through the proxy of the node it is addressed to, and the checker can
// cut it there.
//
// A cut node loses its traffic in both directions: everything addressed to
// it (its own proxies), and everything it sends to others. The proxies of
// the others find what the cut node sends by who sent it: a datagram's
// source is the sender's gossip socket, whose address is known; a TCP
// connection is matched to the process that holds its client socket
// through /proc, which needs no privileges for the checker's own children.
//
// Cutting closes the connections in flight and holds new ones: they are
// accepted but nothing is read from or forwarded to them until the heal,
// which closes them, so a dial succeeds and the request then times out, as
// over a link that drops packets. Datagrams are dropped. The checker's own
// clients talk to each node's real HTTP address, not through a proxy, so a
// cut-off node keeps receiving client requests and must refuse or fail
// them on its own; with namespaces the checker cannot reach it at all.

import (
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
)

type portKind int

const (
	portHTTP portKind = iota
	portRaft
	portGossip
)

func (k portKind) String() string {
	return [...]string{"http", "raft", "gossip"}[k]
}

// proxyNet is the proxies of every node and the cuts in place.
type proxyNet struct {
	logger    *slog.Logger
	pid       func(node int) int // the node's running process, 0 when none
	proxyHost string

	mu     sync.Mutex
	gossip map[string]int // a node's real gossip address → node index
	cuts   map[int]bool   // cut node → only its raft port is cut
	gen    int            // counts changes of cuts
	conns  map[*proxyConn]struct{}
	closed bool
	lns    []io.Closer

	sockMu  sync.Mutex
	sockets map[int]map[string]bool // pid → its TCP sockets' local addresses, while cut
}

// proxyConn is one proxied TCP connection. server is nil while the dial
// to the node is in progress and stays nil for a held connection.
type proxyConn struct {
	dst    int // the node it is addressed to
	kind   portKind
	client net.Conn
	server net.Conn
	heldBy int // the cut node that holds it, -1 when it is forwarded
}

func (c *proxyConn) close() {
	c.client.Close()
	if c.server != nil {
		c.server.Close()
	}
}

func newProxyNet(logger *slog.Logger, proxyHost string, pid func(int) int) *proxyNet {
	return &proxyNet{
		logger: logger, pid: pid, proxyHost: proxyHost,
		gossip: map[string]int{}, cuts: map[int]bool{}, conns: map[*proxyConn]struct{}{},
		sockets: map[int]map[string]bool{},
	}
}

// proxyAvailable reports whether the proxy method can work here: it finds
// a connection's process through /proc (Linux).
func proxyAvailable() bool {
	_, err := os.Stat(fmt.Sprintf("/proc/%d/net/tcp", os.Getpid()))
	return err == nil
}

// addNode starts the proxies of node i, one per kind, and returns the
// addresses the node listens on (real) and advertises (proxied), indexed
// by portKind. The proxy picks a free port on proxyHost and the node
// listens on the same port on realHost, because sessiond advertises its
// listen ports.
func (p *proxyNet) addNode(i int, realHost string) (real, proxied [3]string, err error) {
	for _, kind := range []portKind{portHTTP, portRaft, portGossip} {
		ln, udp, port, err := p.listenPair(realHost, kind == portGossip)
		if err != nil {
			return real, proxied, fmt.Errorf("proxy for node %d %s: %w", i, kind, err)
		}
		real[kind] = net.JoinHostPort(realHost, port)
		proxied[kind] = net.JoinHostPort(p.proxyHost, port)
		p.mu.Lock()
		p.lns = append(p.lns, ln)
		if udp != nil {
			p.lns = append(p.lns, udp)
			p.gossip[real[kind]] = i
		}
		p.mu.Unlock()
		go p.serveTCP(ln, i, kind, real[kind])
		if udp != nil {
			up, err := net.ResolveUDPAddr("udp", real[kind])
			if err != nil {
				return real, proxied, err
			}
			go p.serveUDP(udp, i, up)
		}
	}
	return real, proxied, nil
}

// listenPair listens on a free port of the proxy host (TCP, and UDP on the
// same port when udp is set) that is also free on realHost.
func (p *proxyNet) listenPair(realHost string, udp bool) (net.Listener, *net.UDPConn, string, error) {
	var last error
	for range 20 {
		ln, err := net.Listen("tcp", net.JoinHostPort(p.proxyHost, "0"))
		if err != nil {
			return nil, nil, "", err
		}
		port := strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
		// The node binds realHost:port later; make sure nothing holds it now.
		if probe, err := net.Listen("tcp", net.JoinHostPort(realHost, port)); err != nil {
			ln.Close()
			last = err
			continue
		} else {
			probe.Close()
		}
		if !udp {
			return ln, nil, port, nil
		}
		pc, err := net.ListenPacket("udp", net.JoinHostPort(p.proxyHost, port))
		if err == nil {
			var probe net.PacketConn
			if probe, err = net.ListenPacket("udp", net.JoinHostPort(realHost, port)); err == nil {
				probe.Close()
				return ln, pc.(*net.UDPConn), port, nil
			}
			pc.Close()
		}
		ln.Close()
		last = err
	}
	return nil, nil, "", fmt.Errorf("no free port pair: %w", last)
}

// blocker is the node among cuts whose cut stops traffic of kind
// addressed to node dst and sent by a node for which from reports true,
// or -1.
func blocker(cuts map[int]bool, kind portKind, dst int, from func(node int) bool) int {
	for c, raftOnly := range cuts {
		if raftOnly && kind != portRaft {
			continue
		}
		if c == dst || from(c) {
			return c
		}
	}
	return -1
}

// sentBy reports whether node holds the client end of a connection whose
// client address is addr. The node's sockets are remembered while it is
// cut, so the connections it keeps opening cost one lookup, not one scan
// of /proc each.
func (p *proxyNet) sentBy(node int, addr string) bool {
	pid := p.pid(node)
	if pid <= 0 {
		return false
	}
	p.sockMu.Lock()
	defer p.sockMu.Unlock()
	if known := p.sockets[pid]; known[addr] {
		return true
	}
	owned, err := tcpSockets(pid)
	if err != nil {
		p.logger.Debug("proxy: cannot list sockets", "node", node, "pid", pid, "err", err)
		return false
	}
	p.sockets[pid] = owned
	return owned[addr]
}

func (p *proxyNet) serveTCP(ln net.Listener, dst int, kind portKind, upstream string) {
	for {
		cl, err := ln.Accept()
		if err != nil {
			return // closed
		}
		go p.handle(cl, dst, kind, upstream)
	}
}

func (p *proxyNet) handle(cl net.Conn, dst int, kind portKind, upstream string) {
	from := cl.RemoteAddr().String()
	c := &proxyConn{dst: dst, kind: kind, client: cl}
	for {
		// Finding who sent it reads /proc: not under the lock, and again
		// if a cut began or ended meanwhile.
		p.mu.Lock()
		gen, cuts := p.gen, maps.Clone(p.cuts)
		p.mu.Unlock()
		c.heldBy = blocker(cuts, kind, dst, func(n int) bool { return p.sentBy(n, from) })
		p.mu.Lock()
		if p.gen == gen {
			break
		}
		p.mu.Unlock()
	}
	if p.closed {
		p.mu.Unlock()
		cl.Close()
		return
	}
	p.conns[c] = struct{}{}
	p.mu.Unlock()
	if c.heldBy >= 0 {
		return // held until the heal closes it
	}
	srv, err := net.DialTimeout("tcp", upstream, 2*time.Second)
	p.mu.Lock()
	_, live := p.conns[c] // a cut may have closed it during the dial
	if err == nil && live {
		c.server = srv
	}
	p.mu.Unlock()
	if c.server == nil {
		if srv != nil {
			srv.Close()
		}
		p.drop(c)
		return
	}
	done := make(chan struct{}, 2)
	pipe := func(dst, src net.Conn) {
		_, _ = io.Copy(dst, src)
		done <- struct{}{}
	}
	go pipe(srv, cl)
	go pipe(cl, srv)
	<-done // either side gone: neither raft, memberlist nor HTTP half-closes
	p.drop(c)
}

func (p *proxyNet) drop(c *proxyConn) {
	p.mu.Lock()
	delete(p.conns, c)
	p.mu.Unlock()
	c.close()
}

// serveUDP relays datagrams for node dst. Each sender gets a socket of its
// own towards the node, so whatever the node sends back to a datagram's
// source returns to that sender through the proxy.
func (p *proxyNet) serveUDP(pc *net.UDPConn, dst int, upstream *net.UDPAddr) {
	relays := map[string]*net.UDPConn{}
	defer func() {
		for _, r := range relays {
			r.Close()
		}
	}()
	buf := make([]byte, 64<<10)
	for {
		n, src, err := pc.ReadFromUDP(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		sender := p.gossipNode(src.String())
		if p.udpBlocked(dst, sender) {
			continue
		}
		r := relays[src.String()]
		if r == nil {
			if r, err = net.DialUDP("udp", nil, upstream); err != nil {
				continue
			}
			relays[src.String()] = r
			go p.relayBack(r, pc, src, dst, sender)
		}
		_, _ = r.Write(buf[:n])
	}
}

func (p *proxyNet) relayBack(r, pc *net.UDPConn, to *net.UDPAddr, dst, sender int) {
	buf := make([]byte, 64<<10)
	for {
		n, err := r.Read(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			// ECONNREFUSED while the node is down: keep the relay for
			// when it is back.
			time.Sleep(10 * time.Millisecond)
			continue
		}
		if !p.udpBlocked(dst, sender) {
			_, _ = pc.WriteToUDP(buf[:n], to)
		}
	}
}

func (p *proxyNet) gossipNode(addr string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	if n, ok := p.gossip[addr]; ok {
		return n
	}
	return -1
}

func (p *proxyNet) udpBlocked(dst, sender int) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return blocker(p.cuts, portGossip, dst, func(n int) bool { return n == sender }) >= 0
}

// isolate cuts node off from its peers: every port, or only raft.
func (p *proxyNet) isolate(node int, raftOnly bool) error {
	p.mu.Lock()
	if _, ok := p.cuts[node]; ok {
		p.mu.Unlock()
		return fmt.Errorf("node %d is already cut", node)
	}
	p.cuts[node] = raftOnly
	p.gen++
	p.mu.Unlock()
	// A connection accepted from now on is checked against the cut when
	// it is accepted; the scan covers every one accepted before.
	owned := map[string]bool{}
	if pid := p.pid(node); pid > 0 {
		var err error
		if owned, err = tcpSockets(pid); err != nil {
			// Its connections to others go on until they end by
			// themselves; a new one is held. Say so rather than fail.
			p.logger.Warn("proxy: cannot list the cut node's sockets", "node", node, "pid", pid, "err", err)
		}
	}
	p.mu.Lock()
	var cut []*proxyConn
	for c := range p.conns {
		if c.heldBy >= 0 || raftOnly && c.kind != portRaft {
			continue
		}
		if c.dst == node || owned[c.client.RemoteAddr().String()] {
			cut = append(cut, c)
			delete(p.conns, c)
		}
	}
	p.mu.Unlock()
	for _, c := range cut {
		c.close()
	}
	p.logger.Info("proxy partition", "node", node, "raft_only", raftOnly, "connections_closed", len(cut))
	return nil
}

// heal lifts node's cut and closes the connections it held.
func (p *proxyNet) heal(node int) error {
	p.mu.Lock()
	if _, ok := p.cuts[node]; !ok {
		p.mu.Unlock()
		return fmt.Errorf("node %d is not cut", node)
	}
	delete(p.cuts, node)
	p.gen++
	var held []*proxyConn
	for c := range p.conns {
		if c.heldBy == node {
			held = append(held, c)
			delete(p.conns, c)
		}
	}
	p.mu.Unlock()
	p.sockMu.Lock()
	clear(p.sockets) // ports are reused: forget who held them
	p.sockMu.Unlock()
	for _, c := range held {
		c.close()
	}
	p.logger.Info("proxy partition healed", "node", node, "held_connections_closed", len(held))
	return nil
}

func (p *proxyNet) close() error {
	p.mu.Lock()
	p.closed = true
	lns, conns := p.lns, p.conns
	p.lns, p.conns = nil, map[*proxyConn]struct{}{}
	p.mu.Unlock()
	for _, l := range lns {
		l.Close()
	}
	for c := range conns {
		c.close()
	}
	return nil
}

// tcpSockets is the local address ("ip:port") of every TCP socket that
// process pid has open, read from /proc/PID/fd and /proc/PID/net/tcp{,6}.
func tcpSockets(pid int) (map[string]bool, error) {
	fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		return nil, err
	}
	inodes := map[string]bool{}
	for _, fd := range fds {
		l, err := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", pid, fd.Name()))
		if err == nil && strings.HasPrefix(l, "socket:[") {
			inodes[strings.TrimSuffix(strings.TrimPrefix(l, "socket:["), "]")] = true
		}
	}
	out := map[string]bool{}
	for _, table := range []string{"tcp", "tcp6"} {
		data, err := os.ReadFile(fmt.Sprintf("/proc/%d/net/%s", pid, table))
		if err != nil {
			continue // no IPv6
		}
		for _, line := range strings.Split(string(data), "\n")[1:] {
			// sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode
			f := strings.Fields(line)
			if len(f) < 10 || !inodes[f[9]] {
				continue
			}
			if ap, ok := parseProcAddr(f[1]); ok {
				out[ap.String()] = true
			}
		}
	}
	return out, nil
}

// parseProcAddr parses "0100007F:1F90": the address as 32-bit words in
// host byte order, the port big-endian, both in hex.
func parseProcAddr(s string) (netip.AddrPort, bool) {
	ipHex, portHex, ok := strings.Cut(s, ":")
	if !ok || len(ipHex) != 8 && len(ipHex) != 32 {
		return netip.AddrPort{}, false
	}
	raw, err := hex.DecodeString(ipHex)
	if err != nil {
		return netip.AddrPort{}, false
	}
	for w := 0; w < len(raw); w += 4 {
		binary.NativeEndian.PutUint32(raw[w:], binary.BigEndian.Uint32(raw[w:]))
	}
	port, err := strconv.ParseUint(portHex, 16, 16)
	if err != nil {
		return netip.AddrPort{}, false
	}
	addr, _ := netip.AddrFromSlice(raw)
	return netip.AddrPortFrom(addr.Unmap(), uint16(port)), true
}
