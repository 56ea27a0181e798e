package cache

import (
	"errors"
	"fmt"
)

// ErrUnavailable is matched (errors.Is) by every error meaning "the store
// could not answer": backend down or hung, timeout, circuit breaker open.
// The engine applies its failure policy on it.
var ErrUnavailable = errors.New("store unavailable")

// ErrBreakerOpen is returned without contacting the backend while the
// circuit breaker is open. It also matches ErrUnavailable.
var ErrBreakerOpen = fmt.Errorf("%w: circuit breaker open", ErrUnavailable)

// Error is a failed store operation.
type Error struct {
	Backend string // "redis", "embedded", "memory"
	Op      string // "record_sent", "inbound", "ping"
	Err     error
}

func (e *Error) Error() string {
	return fmt.Sprintf("%s store: %s: %v", e.Backend, e.Op, e.Err)
}

func (e *Error) Unwrap() error { return e.Err }

// Is makes every *Error match ErrUnavailable.
func (e *Error) Is(target error) bool { return target == ErrUnavailable }

// Unavailable wraps err as an *Error (nil stays nil).
func Unavailable(backend, op string, err error) error {
	if err == nil {
		return nil
	}
	return &Error{Backend: backend, Op: op, Err: err}
}
