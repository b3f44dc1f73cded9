// Package httpapi serves sessiond's HTTP API with echo: the chat-session
// routes under /api/chat/session/{id}, the operations routes under /v1, the
// internal node-to-node routes under /internal/v1, and health checks. It
// validates input, turns it into fsm commands and renders results.
//
// It reaches the node only through the small interfaces it declares, never
// through a concrete node type: Store (the local shards), Cluster (leaders,
// members, placement; what forwarding needs), Replicas (replica moves) and
// Metrics, plus the optional ones a Store or Cluster may also implement:
// LocalBackups, PeerBackups, ShardLister and the raft log's statistics.
// *cluster.Node implements the node's, *metrics.Registry Metrics, and
// tests serve the API over in-memory fakes of them. The signatures carry
// other packages' data types, so httpapi imports shard, cluster and raftlog
// for types and errors only: shard's Consistency, Status, snapshots and the
// shard errors it maps to API errors; cluster's MemberStatus, Move, Alarm,
// Membership, SessionPage and its replica-move and quota errors;
// raftlog.Stats. Package backup reads and writes the backup archives.
package httpapi

import (
	"context"
	"crypto/tls"
	"log/slog"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/sessiond/sessiond/fsm"
	"github.com/sessiond/sessiond/shard"
)

// Store is what the HTTP layer needs from the node's shards.
type Store interface {
	// NodeID names this node in X-Sessiond-Node.
	NodeID() string
	// ShardCount is the fixed number of shards.
	ShardCount() int
	// ShardFor maps a session id to its shard.
	ShardFor(sessionID string) uint32
	// Apply proposes cmd on the shard and returns the FSM's result.
	Apply(ctx context.Context, shard uint32, cmd *fsm.Command) (*fsm.Result, error)
	// Read waits until the shard may be read at the given consistency and
	// returns its state.
	Read(ctx context.Context, shard uint32, c shard.Consistency) (*fsm.FSM, error)
	// ShardStatus reports this node's replica of a shard, if it has one.
	ShardStatus(shard uint32) (shard.Status, bool)
	// Ready reports whether the node can serve every shard it replicates.
	Ready() bool
}

// Config tunes the HTTP layer.
type Config struct {
	Limits       fsm.Limits
	MaxBodyBytes int64 // whole request body
	MaxBatch     int   // messages in one append request
	Logger       *slog.Logger
	Version      string // build version, shown by /v1/cluster
	// Cluster routes requests for shards led elsewhere; nil serves every
	// request locally (a standalone node).
	Cluster Cluster
	// Replicas serves the internal replica-lifecycle routes; nil disables
	// them.
	Replicas Replicas
	// OnDrain is called when this node is asked to drain (it should drain
	// and exit, as on SIGTERM); nil refuses drain requests for this node.
	OnDrain func()
	// MaxInFlightPerShard bounds the reads and writes this node runs at once
	// on one shard, and MaxInFlight those over all its shards. A request
	// beyond either bound is answered 503 overloaded with Retry-After at
	// once, before it reaches raft. Only the node that serves a request
	// counts it, not one that forwards it. Below 1 means the default
	// (DefaultMaxInFlightPerShard, DefaultMaxInFlight).
	MaxInFlightPerShard int
	MaxInFlight         int
	// SessionWriteRate and SessionWriteBurst bound the writes one session
	// may make through this node: SessionWriteBurst at once, then
	// SessionWriteRate a second; beyond them a write gets 429 rate_limited
	// with Retry-After. A rate of 0 means no limit.
	SessionWriteRate  float64
	SessionWriteBurst int
	// SessionTTL is the node's --session-ttl, shown as the expiresAt of
	// sessions without an expiry of their own; 0 means none.
	SessionTTL time.Duration
	// MaxStreams bounds the change streams and blocking reads this node
	// serves at once; beyond it they get 503 overloaded. Below 1 means
	// DefaultMaxStreams.
	MaxStreams int
	// Auth authenticates requests; nil serves every request to anyone (no
	// tokens configured). With it, every route but /healthz, /readyz and
	// the console's files (GET /ui/...) needs a credential: the session
	// routes the data scope, GET and HEAD of /v1 and /metrics the read
	// scope, everything else admin.
	Auth Authenticator
	// Metrics receives request measurements and refusal counts; nil
	// measures nothing.
	Metrics Metrics
	// MetricsHandler serves GET /metrics (the read scope when tokens are
	// configured); nil serves no such route.
	MetricsHandler http.Handler
	// PeerTLS, when set, makes the node reach other nodes' HTTP ports over
	// HTTPS with this configuration (it presents the node's certificate),
	// and redirect clients to https:// addresses.
	PeerTLS *tls.Config
	// ScratchDir is where a restore keeps an archive's snapshots while it
	// verifies and applies them; empty means os.TempDir().
	ScratchDir string
}

// DefaultConfig returns the HTTP layer with fsm.DefaultLimits and the
// default request body and batch limits listed in the README.
func DefaultConfig() Config {
	return Config{Limits: fsm.DefaultLimits, MaxBodyBytes: 2 << 20, MaxBatch: 1000, Logger: slog.Default(),
		MaxInFlightPerShard: DefaultMaxInFlightPerShard, MaxInFlight: DefaultMaxInFlight}
}

// Server is the HTTP API of one node.
type Server struct {
	store    Store
	cfg      Config
	logger   *slog.Logger
	echo     *echo.Echo
	forward  *forwarder
	inflight *inflight
	limiter  *sessionLimiter
	streams  *streams
}

// New builds the API over store.
func New(store Store, cfg Config) *Server {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	s := &Server{store: store, cfg: cfg, logger: cfg.Logger, echo: echo.New(), forward: newForwarder(store.NodeID(), cfg.PeerTLS),
		inflight: newInflight(store.ShardCount(), cfg.MaxInFlightPerShard, cfg.MaxInFlight),
		limiter:  newSessionLimiter(cfg.SessionWriteRate, cfg.SessionWriteBurst),
		streams:  newStreams(cfg.MaxStreams)}
	e := s.echo
	e.HideBanner = true
	e.HidePort = true
	e.HTTPErrorHandler = s.handleError
	e.IPExtractor = echo.ExtractIPDirect()
	if cfg.Metrics != nil {
		e.Pre(s.measure) // first, so that it times and counts everything below
	}
	e.Pre(s.nodeHeader)
	if cfg.Auth != nil {
		e.Pre(s.authorize)
	}
	s.routes()
	return s
}

// ServeHTTP makes the Server an http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.echo.ServeHTTP(w, r) }

func (s *Server) routes() {
	e := s.echo
	// sessionScope is route middleware, not group middleware: echo gives a
	// group with middleware catch-all 404 routes that swallow 405s and run
	// the middleware without the :id parameter.
	g := e.Group("/api/chat/session/:id")
	sc := s.sessionScope
	g.GET("", s.getSession, sc)
	g.PUT("", s.putSession, sc)
	g.PATCH("", s.patchSession, sc)
	g.DELETE("", s.deleteSession, sc)
	g.POST("/messages", s.appendMessages, sc)
	g.GET("/messages", s.listMessages, waitable, sc)
	g.GET("/events", s.sessionEvents, longLived, sc)
	g.PUT("/expiry", s.putExpiry, sc)
	g.DELETE("/expiry", s.deleteExpiry, sc)
	g.GET("/alarms", s.listAlarms, sc)
	g.PUT("/alarms/:name", s.putAlarm, sc)
	g.DELETE("/alarms/:name", s.deleteAlarm, sc)
	g.GET("/state", s.getFields, sc)
	g.GET("/state/:field", s.getField, sc)
	g.PUT("/state/:field", s.putField, sc)
	g.DELETE("/state/:field", s.deleteField, sc)
	g.GET("/pending-match", s.getField, sc)
	g.PUT("/pending-match", s.putField, sc)
	g.DELETE("/pending-match", s.deleteField, sc)

	e.GET("/v1/cluster", s.clusterStatus)
	e.GET("/v1/openapi.json", s.openAPI)
	e.GET("/v1/sessions/:id/owner", s.sessionOwner, s.sessionScope)
	e.POST("/v1/shards/:shard/transfer-leadership", s.transferLeadership)
	e.POST("/v1/nodes/:id/drain", s.drainNode)
	e.GET("/healthz", s.healthz)
	e.GET("/readyz", s.readyz)
	if s.cfg.MetricsHandler != nil {
		e.GET("/metrics", s.serveMetrics)
	}
	s.internalRoutes()
	s.listRoutes()
	s.consoleRoutes()
	s.backupRoutes()
}

// nodeHeader names the serving node on every response, errors included.
func (s *Server) nodeHeader(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		c.Response().Header().Set("X-Sessiond-Node", s.store.NodeID())
		return next(c)
	}
}
