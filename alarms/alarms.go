// Package alarms fires sessions' alarms and delivers them to a webhook.
//
// Every node runs a Scheduler; it acts only on the shards the node leads.
// Each round it proposes a fire for every alarm that is due (the state
// machine makes a fire happen once, whoever proposes it and however often)
// and posts every fired alarm not yet delivered to the webhook, marking it
// delivered through raft once the webhook answers 2xx. A leader that dies
// between a fire and its delivery leaves the fire undelivered in the log,
// and the next leader delivers it: delivery is at least once, and the
// Idempotency-Key header ("SESSION:ALARM:VERSION", the same on every
// attempt by every node) lets the receiver make it once.
package alarms

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/sessiond/sessiond/fsm"
)

// Replica is a shard replica this node may lead.
type Replica interface {
	IsLeader() bool
	FSM() *fsm.FSM
	// Apply proposes cmd; it fails on a replica that does not lead.
	Apply(ctx context.Context, cmd *fsm.Command) (*fsm.Result, error)
}

// Config configures a Scheduler.
type Config struct {
	// Replicas lists the node's replicas at the moment of the call.
	Replicas func() []Replica
	// Webhook receives every fired alarm as a POST; "" delivers nowhere
	// (fired alarms still reach change streams).
	Webhook string
	// Client posts to the webhook; nil uses one with a 10 s timeout.
	Client *http.Client
	Logger *slog.Logger
	// Interval between rounds (default 1 s): an alarm fires within about
	// that much after it is due.
	Interval time.Duration
}

// Scheduler fires and delivers alarms. Run it once; it stops with its
// context.
type Scheduler struct {
	cfg Config

	mu       sync.Mutex
	inFlight map[string]bool      // deliveries being attempted, by idempotency key
	backoff  map[string]time.Time // when a failed delivery may be tried again
	failures map[string]int
}

// New returns a Scheduler for cfg.
func New(cfg Config) *Scheduler {
	if cfg.Client == nil {
		cfg.Client = &http.Client{Timeout: 10 * time.Second}
	}
	if cfg.Interval <= 0 {
		cfg.Interval = time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &Scheduler{cfg: cfg, inFlight: map[string]bool{}, backoff: map[string]time.Time{}, failures: map[string]int{}}
}

// Run fires and delivers until ctx ends.
func (s *Scheduler) Run(ctx context.Context) {
	t := time.NewTicker(s.cfg.Interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			s.Round(ctx)
		}
	}
}

// perRound bounds the fires and deliveries one round starts per replica.
const perRound = 256

// Round fires what is due and starts deliveries on the replicas this node
// leads. Deliveries run on goroutines of their own.
func (s *Scheduler) Round(ctx context.Context) {
	now := time.Now().UnixMilli()
	for _, r := range s.cfg.Replicas() {
		if !r.IsLeader() {
			continue
		}
		for _, due := range r.FSM().DueAlarms(now, perRound) {
			cmd := &fsm.Command{Op: fsm.OpFireAlarm, Session: due.Session, Name: due.Name, Set: due.Set, At: now}
			if _, err := r.Apply(ctx, cmd); err != nil {
				s.cfg.Logger.Debug("firing an alarm failed; the next round tries again", "session", due.Session, "alarm", due.Name, "err", err)
				break // leadership is likely gone
			}
		}
		if s.cfg.Webhook == "" {
			continue
		}
		for _, u := range r.FSM().UndeliveredAlarms(perRound) {
			s.deliver(ctx, r, u)
		}
	}
}

// IdempotencyKey is the key every delivery attempt of one fire carries.
func IdempotencyKey(session, alarm string, version uint64) string {
	return fmt.Sprintf("%s:%s:%d", session, alarm, version)
}

// Delivery is the JSON body posted to the webhook.
type Delivery struct {
	Session string          `json:"session"`
	Alarm   string          `json:"alarm"`
	At      int64           `json:"at"`      // when it was due, unix ms
	FiredAt int64           `json:"firedAt"` // when it fired, unix ms
	Version uint64          `json:"version"` // the session version of the fire
	Payload json.RawMessage `json:"payload,omitempty"`
}

func (s *Scheduler) deliver(ctx context.Context, r Replica, u fsm.UndeliveredAlarm) {
	key := IdempotencyKey(u.Session, u.Name, u.Version)
	s.mu.Lock()
	if s.inFlight[key] || time.Now().Before(s.backoff[key]) {
		s.mu.Unlock()
		return
	}
	s.inFlight[key] = true
	s.mu.Unlock()
	go func() {
		err := s.post(ctx, key, Delivery{Session: u.Session, Alarm: u.Name, At: u.At, FiredAt: u.FiredAt, Version: u.Version, Payload: u.Payload})
		if err == nil {
			_, err = r.Apply(ctx, &fsm.Command{Op: fsm.OpAlarmDelivered, Session: u.Session, Name: u.Name, Set: u.Version, At: time.Now().UnixMilli()})
			if err != nil {
				err = fmt.Errorf("delivered, but recording it failed (it will be delivered again): %w", err)
			}
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		delete(s.inFlight, key)
		if err == nil {
			delete(s.backoff, key)
			delete(s.failures, key)
			return
		}
		if len(s.failures) > 100_000 { // keys of sessions deleted meanwhile
			clear(s.failures)
			clear(s.backoff)
		}
		n := s.failures[key] + 1
		s.failures[key] = n
		wait := min(time.Second<<min(n, 8), 5*time.Minute) // 2 s, 4 s, … 5 min
		s.backoff[key] = time.Now().Add(wait)
		s.cfg.Logger.Warn("alarm delivery failed; retrying", "key", key, "attempt", n, "retry_in", wait, "err", err)
	}()
}

func (s *Scheduler) post(ctx context.Context, key string, d Delivery) error {
	body, err := json.Marshal(d)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.cfg.Webhook, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Idempotency-Key", key)
	resp, err := s.cfg.Client.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("webhook answered %s", resp.Status)
	}
	return nil
}
