package cluster

import (
	"crypto/rand"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// Identity is what a node persists about the cluster it belongs to. The shard
// count is part of the on-disk format (sessions are hashed onto shards), so a
// node never runs with a count other than the one its cluster was
// bootstrapped with.
type Identity struct {
	ClusterID  uint64 `json:"clusterId"`
	ShardCount int    `json:"shardCount"`
	NodeID     string `json:"nodeId"`
	// Founders are the nodes that bootstrapped the cluster together; empty
	// for a node that joined an existing cluster.
	Founders []string `json:"founders,omitempty"`
	// Incarnation is drawn at random when the node first starts with an
	// empty data dir and kept with the identity. The cluster id hashes the
	// founders' ids and incarnations, so a founder whose data was wiped
	// (and therefore has a new incarnation) is never mistaken for itself.
	Incarnation uint64 `json:"incarnation"`
	// Settled is set once every founder has formed. From then on a node
	// without an identity is a newcomer (or a wiped old member) and must
	// never bootstrap a shard.
	Settled bool `json:"settled"`
}

const identityFile = "cluster.json"

// ErrNoIdentity means the data dir has never joined or formed a cluster.
var ErrNoIdentity = errors.New("no cluster identity in the data dir")

// LoadIdentity reads DATA/cluster.json.
func LoadIdentity(dataDir string) (Identity, error) {
	var id Identity
	b, err := os.ReadFile(filepath.Join(dataDir, identityFile))
	if errors.Is(err, fs.ErrNotExist) {
		return id, ErrNoIdentity
	}
	if err != nil {
		return id, err
	}
	if err := json.Unmarshal(b, &id); err != nil {
		return id, fmt.Errorf("%s is corrupt: %w", filepath.Join(dataDir, identityFile), err)
	}
	if id.ClusterID == 0 || id.ShardCount < 1 {
		return id, fmt.Errorf("%s is incomplete", filepath.Join(dataDir, identityFile))
	}
	return id, nil
}

// SaveIdentity writes DATA/cluster.json atomically (temp file, fsync, rename,
// fsync of the directory), so a crash leaves the old file or the new one.
func SaveIdentity(dataDir string, id Identity) error {
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return err
	}
	b, err := json.MarshalIndent(id, "", "  ")
	if err != nil {
		return err
	}
	path := filepath.Join(dataDir, identityFile)
	tmp, err := os.CreateTemp(dataDir, identityFile+".tmp*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(append(b, '\n')); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return err
	}
	dir, err := os.Open(dataDir)
	if err != nil {
		return err
	}
	defer dir.Close()
	return dir.Sync()
}

// NewClusterID draws a random non-zero cluster id.
func NewClusterID() uint64 {
	for {
		var b [8]byte
		_, _ = rand.Read(b[:])
		if id := binary.BigEndian.Uint64(b[:]); id != 0 {
			return id
		}
	}
}
