package fsm

// Status is the outcome of applying one command. Conflicts and missing
// sessions are ordinary results, decided identically on every replica; they
// are not raft errors.
type Status uint8

const (
	// StatusOK means the command applied (or, for a replayed append, that
	// every message was already stored and nothing changed).
	StatusOK Status = iota
	// StatusVersionMismatch means IfVersion did not match; nothing changed.
	StatusVersionMismatch
	// StatusNotFound means the session (or field) does not exist.
	StatusNotFound
	// StatusIDConflict means a message id is already stored with another
	// role, content or meta; nothing changed.
	StatusIDConflict
	// StatusInvalid means the command breaks a limit or is malformed;
	// nothing changed.
	StatusInvalid
	// StatusTooLarge means the write would take the session over a size
	// limit (messages or field bytes); nothing changed.
	StatusTooLarge
)

var statusNames = [...]string{"ok", "version-mismatch", "not-found", "id-conflict", "invalid", "too-large"}

func (s Status) String() string {
	if int(s) < len(statusNames) {
		return statusNames[s]
	}
	return "unknown"
}

// Result is what Apply returns for a command.
type Result struct {
	Status Status
	// Version is the session's version after the command: the new version on
	// success; on a conflict, not-found or too-large result the current one
	// (0 if absent); 0 for StatusInvalid, which is decided before the
	// session is looked at.
	Version uint64
	// Created is set when the command created the session.
	Created bool
	// Changed is false when a successful command changed nothing (an append
	// whose messages were all stored already, an expiry that found nothing).
	Changed bool
	// Messages holds, for an append, the stored message for every message
	// of the command in the same order, whether newly stored or already there.
	Messages []Message
	// Session is the session after the command (nil when deleted or absent).
	Session *Session
	// Expired counts the sessions an OpExpire removed.
	Expired int
	// Detail explains a non-OK status.
	Detail string
}
