package cluster

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"strings"

	"github.com/hashicorp/memberlist"
)

// DefaultGossipLabel is the memberlist label used when Config.GossipLabel is
// empty. Every gossip packet and stream carries the label, and a node drops
// traffic labelled otherwise (or not labelled), so sessiond gossip does not
// mix with another memberlist-based system (Consul, Serf, …) that shares
// its network. With keys, the label is also authenticated as part of each
// encrypted message.
const DefaultGossipLabel = "sessiond"

// gossipKeySizes are the key lengths memberlist accepts: AES-128, -192, -256.
const gossipKeySizes = "16, 24 or 32 bytes (AES-128, AES-192 or AES-256)"

// ParseGossipKeys parses a comma-separated list of base64-encoded (standard
// encoding, padded) gossip keys, as --gossip-key takes them. The first key is
// the primary one; see Config.GossipKeys. An empty or blank string means no
// keys. Errors name the key by position and never include key material.
func ParseGossipKeys(s string) ([][]byte, error) {
	if strings.TrimSpace(s) == "" {
		return nil, nil
	}
	parts := strings.Split(s, ",")
	keys := make([][]byte, 0, len(parts))
	for i, p := range parts {
		p = strings.TrimSpace(p)
		if p == "" {
			return nil, fmt.Errorf("gossip key %d of %d is empty; give keys as a comma-separated list of base64 strings", i+1, len(parts))
		}
		k, err := base64.StdEncoding.DecodeString(p)
		if err != nil {
			return nil, fmt.Errorf("gossip key %d of %d is not valid base64 (standard encoding); generate one with `openssl rand -base64 32`", i+1, len(parts))
		}
		keys = append(keys, k)
	}
	if err := validateGossipKeys(keys); err != nil {
		return nil, err
	}
	return keys, nil
}

// validateGossipKeys checks the length of every key and that none is
// listed twice.
func validateGossipKeys(keys [][]byte) error {
	for i, k := range keys {
		if err := memberlist.ValidateKey(k); err != nil {
			return fmt.Errorf("gossip key %d of %d is %d bytes; a gossip key must be %s", i+1, len(keys), len(k), gossipKeySizes)
		}
		for j := 0; j < i; j++ {
			if bytes.Equal(keys[j], k) {
				return fmt.Errorf("gossip key %d of %d is the same as key %d; list each key once", i+1, len(keys), j+1)
			}
		}
	}
	return nil
}

// validateGossip checks the gossip security settings of a Config.
func (c *Config) validateGossip() error {
	if err := validateGossipKeys(c.GossipKeys); err != nil {
		return err
	}
	if len(c.GossipLabel) > memberlist.LabelMaxSize {
		return fmt.Errorf("gossip label is %d bytes; at most %d are allowed", len(c.GossipLabel), memberlist.LabelMaxSize)
	}
	return nil
}

// gossipLabel is the memberlist label this node uses.
func (c *Config) gossipLabel() string {
	if c.GossipLabel == "" {
		return DefaultGossipLabel
	}
	return c.GossipLabel
}

// secureGossip applies the node's label and keys to a memberlist config.
// With keys, every message is encrypted and authenticated (AES-GCM) with
// the primary key, messages under any listed key are accepted, and plain
// messages are refused in both directions.
func (c *Config) secureGossip(mc *memberlist.Config) error {
	mc.Label = c.gossipLabel()
	mc.SkipInboundLabelCheck = false
	mc.SecretKey = nil
	mc.Keyring = nil
	if len(c.GossipKeys) == 0 {
		return nil
	}
	// Copies, so that the caller's slices are never shared with memberlist.
	keys := make([][]byte, len(c.GossipKeys))
	for i, k := range c.GossipKeys {
		keys[i] = bytes.Clone(k)
	}
	kr, err := memberlist.NewKeyring(keys[1:], keys[0])
	if err != nil {
		return fmt.Errorf("gossip keyring: %w", err)
	}
	mc.Keyring = kr
	mc.GossipVerifyIncoming, mc.GossipVerifyOutgoing = true, true
	return nil
}
