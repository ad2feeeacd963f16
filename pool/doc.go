// Package pool keeps upstream TCP connections dialed ahead of need ("warm"),
// so that a new client of the forwarder skips the upstream handshake.
//
// A Pool holds up to Config.Max idle connections in an LRU set. New starts
// dialing Config.Warm of them at once in the background; every borrow (Get)
// refills the set back up to Warm, counting dials in flight, so the upstream
// never sees more than clients + Warm connections from the pool. Get hands out
// the newest idle connection first, after checking it with a single
// non-blocking syscall (a peek through SyscallConn, plus TCP_INFO on Linux
// when bytes are waiting): a connection the peer closed or reset is discarded
// and the next one is tried, and when none is left Get dials (a miss). Bytes
// the server sent first (an SSH banner, a MySQL handshake) stay in the socket
// for the client.
//
// An idle connection lives at most Config.TTL (each one gets its own deadline
// between 85% and 100% of it, so they do not all expire at once), checked on
// take and by a reaper goroutine (or by Reap, for a pool on the caller's own
// clock, Config.Now). Expired connections are replaced only while clients
// keep coming: when no Get came for a whole TTL the pool drains to zero, and
// the next Get (a miss) warms it up again.
//
// Put takes a connection back after a client is done with it (for
// request/response protocols only), if it is alive and has nothing unread.
//
// Zero values of Config mean: Warm 0 - no dialing ahead, Get just dials, Put
// may still recycle; Max 0 - DefaultMax idle connections; TTL 0 - DefaultTTL.
//
// Servers count pre-dialed, not yet authenticated connections against their
// own limits and close them after a grace time: MySQL's connect_timeout is 10s
// (the DefaultTTL of 8s stays below it), PostgreSQL's authentication_timeout
// 60s, sshd's LoginGraceTime 120s with MaxStartups 10 (keep Warm small). Use a
// TTL below the server's grace time so that the pool, not the server, closes
// them.
package pool
