package recycle

// Redis is the Redis protocol, RESP2 and RESP3 (--reuse redis). The connection's state
// (SELECT, CLIENT SETNAME, HELLO's protocol version, AUTH) is cleared by RESET (Redis 6.2
// and later) before reuse.
var Redis Protocol = redisProtocol{}

type redisProtocol struct{}

var redisReset = []byte("*1\r\n$5\r\nRESET\r\n")

func (redisProtocol) Name() string        { return "redis" }
func (redisProtocol) NewTracker() Tracker { return &redisTracker{} }

func (redisProtocol) ResetRequest() []byte {
	return redisReset
}

func (redisProtocol) CheckReset(reply []byte) (bool, error) {
	return false, ErrNoReset
}

type redisTracker struct{ bad bool }

func (t *redisTracker) Request(b []byte)  { t.bad = true }
func (t *redisTracker) Response(b []byte) { t.bad = true }
func (t *redisTracker) Clean() bool       { return !t.bad }
