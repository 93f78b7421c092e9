package ipam

import (
	"errors"
	"fmt"
)

// Reason classifies an allocation error. Reasons are stable tokens, suitable
// for Prometheus labels and event reasons; the message is for humans.
type Reason string

// Reasons returned by the Allocator and SelectPools.
const (
	ReasonInvalid       Reason = "Invalid"       // the request itself is malformed
	ReasonNoSuchPool    Reason = "NoSuchPool"    // a named pool does not exist
	ReasonNotInPool     Reason = "NotInPool"     // the address is in no pool, or not in the named one
	ReasonPoolExhausted Reason = "PoolExhausted" // the pool has no free address of the family
	ReasonNoFamily      Reason = "NoFamily"      // the pool has no address of the family at all
	ReasonNotAllowed    Reason = "NotAllowed"    // pinning, autoAssign or overlap keeps the service off the pool
	ReasonAddressInUse  Reason = "AddressInUse"  // held by a service it may not share with
	ReasonPortConflict  Reason = "PortConflict"  // sharing allowed, but the ports collide
	ReasonFamilyTaken   Reason = "FamilyTaken"   // the service already holds an address of that family
)

// Error is the error type returned by this package's allocation functions.
// Its message says what happened in words a user can act on; it is copied
// verbatim into Kubernetes events.
type Error struct {
	Reason  Reason
	Message string
}

func (e *Error) Error() string { return e.Message }

func errorf(r Reason, format string, args ...any) *Error {
	return &Error{Reason: r, Message: fmt.Sprintf(format, args...)}
}

// ReasonOf returns the Reason of err if it is (or wraps) an *Error, and "" otherwise.
func ReasonOf(err error) Reason {
	var e *Error
	if errors.As(err, &e) {
		return e.Reason
	}
	return ""
}
