package main

import (
	"context"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/sessiond/sessiond/auth"
)

// credentials are the node's secrets loaded from files: what clients must
// present, and what the node presents to its peers. SIGHUP reloads them.
type credentials struct {
	tokens *auth.TokenFile // nil without --token-file
}

func loadCredentials(cfg *config) (*credentials, error) {
	c := &credentials{}
	if cfg.TokenFile != "" {
		t, err := auth.LoadTokenFile(cfg.TokenFile)
		if err != nil {
			return nil, err
		}
		c.tokens = t
	}
	return c, nil
}

// authenticator is what the HTTP layer checks requests with; nil when the
// node has no credentials configured and serves everyone.
func (c *credentials) authenticator() *auth.Authenticator {
	if c.tokens == nil {
		return nil
	}
	return &auth.Authenticator{Tokens: c.tokens}
}

// peerToken is the bearer token the node sends to other nodes' HTTP ports;
// nil without a token file.
func (c *credentials) peerToken() func() string {
	if c.tokens == nil {
		return nil
	}
	return func() string { return c.tokens.Tokens().NodeToken() }
}

// reload re-reads every credential file; a file that fails keeps its old
// contents in force.
func (c *credentials) reload(logger *slog.Logger) {
	if c.tokens != nil {
		if err := c.tokens.Reload(); err != nil {
			logger.Error("reloading tokens failed; the previous tokens stay in force", "err", err)
		} else {
			logger.Info("reloaded tokens")
		}
	}
}

// reloadOnSIGHUP reloads credentials on every SIGHUP until ctx ends.
func reloadOnSIGHUP(ctx context.Context, c *credentials, logger *slog.Logger) {
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, syscall.SIGHUP)
	defer signal.Stop(ch)
	for {
		select {
		case <-ctx.Done():
			return
		case <-ch:
			c.reload(logger)
		}
	}
}
