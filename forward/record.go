package forward

import "github.com/warmport/warmport/session"

// The session's records are package session's; these names keep the
// Forwarder's API whole for its callers.
type (
	Record  = session.Record
	Totals  = session.Totals
	Summary = session.Summary
)

// How a connection ended (Record.ClosedBy).
const (
	ClosedByClient   = session.ClosedByClient
	ClosedByRemote   = session.ClosedByRemote
	ClosedByTimeout  = session.ClosedByTimeout
	ClosedByShutdown = session.ClosedByShutdown
	ClosedByError    = session.ClosedByError
)

// DefaultMaxRecords is how many closed connections a session keeps when
// Config.MaxRecords is zero.
const DefaultMaxRecords = session.DefaultMaxRecords
