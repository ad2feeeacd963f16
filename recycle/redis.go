package recycle

import (
	"bytes"
	"errors"
	"fmt"
	"sync"
)

// Redis is the Redis protocol, RESP2 and RESP3 (--reuse redis). A connection is clean when
// every command got its whole reply and no transaction, WATCH, subscription, MONITOR or
// CLIENT REPLY mode is open; the state that remains (SELECT, CLIENT SETNAME, HELLO's
// protocol version, AUTH, READONLY) is what RESET (Redis 6.2 and later) clears, so the
// caller sends ResetRequest before reuse.
var Redis Protocol = redisProtocol{}

type redisProtocol struct{}

var redisReset = []byte("*1\r\n$5\r\nRESET\r\n")

func (redisProtocol) Name() string        { return "redis" }
func (redisProtocol) NewTracker() Tracker { return &redisTracker{} }

// ResetRequest returns RESET as a RESP array; the slice is shared: do not modify it.
func (redisProtocol) ResetRequest() []byte { return redisReset }

func (redisProtocol) CheckReset(reply []byte) (bool, error) {
	const ok = "+RESET\r\n"
	i := bytes.IndexByte(reply, '\n')
	if i < 0 {
		switch {
		case len(reply) > maxLine:
			return false, errors.New("recycle: reply to RESET too long")
		case len(reply) == 0 || reply[0] == '-' || bytes.HasPrefix([]byte(ok), reply):
			return false, nil
		}
		return false, fmt.Errorf("recycle: unexpected reply to RESET: %q", reply)
	}
	line, extra := reply[:i+1], reply[i+1:]
	switch {
	case len(extra) > 0:
		// The server said more than one reply: the connection is out of step.
		return false, fmt.Errorf("recycle: %d unexpected bytes after the reply to RESET", len(extra))
	case string(line) == ok:
		return true, nil
	case line[0] == '-':
		msg := bytes.TrimRight(line[1:], "\r\n")
		// An unknown or forbidden command will stay so for the server's life; any other
		// error (LOADING, BUSY) condemns only this connection.
		if hasPrefixFold(msg, "err unknown command") || hasPrefixFold(msg, "noperm") {
			return true, fmt.Errorf("%w: %s", ErrNoReset, msg)
		}
		return true, fmt.Errorf("recycle: RESET failed: %s", msg)
	}
	return true, fmt.Errorf("recycle: unexpected reply to RESET: %q", line)
}

// maxDepth bounds the nesting of aggregate replies; deeper is doubtful.
const maxDepth = 64

// maxName is how much of a command's first two arguments is kept: enough for every
// command name the tracker looks for.
const maxName = 16

// redisState is where one direction's parser is within a message.
type redisState uint8

const (
	rLine redisState = iota // expecting a line: a command, a bulk length, a reply's type line
	rBulk                   // in a bulk string: remain bytes to go
	rCR                     // expecting the '\r' after a bulk string
	rLF                     // expecting the '\n' after it
)

type redisSide struct {
	line   lineReader
	state  redisState
	remain int64
}

// frame is an aggregate reply being read: remain elements to go.
type frame struct {
	remain int64
	attr   bool // an attribute: it precedes a value and is not one itself
}

type redisTracker struct {
	mu  sync.Mutex
	bad bool // sticky: something doubtful was seen

	commands, replies uint64
	multi, watch      bool // a MULTI or WATCH awaits EXEC, DISCARD (or UNWATCH)

	req      redisSide
	args     int64 // arguments of the command being read still to come
	arg      int   // index of the argument being read
	name     [2][maxName]byte
	nameLen  [2]int // length of name[i]; -1 when longer than maxName
	captured int    // bytes of the current argument copied into name so far

	rep   redisSide
	depth int
	stack [maxDepth]frame
}

func (t *redisTracker) Request(b []byte) {
	t.mu.Lock()
	t.feedRequest(b)
	t.mu.Unlock()
}

func (t *redisTracker) Response(b []byte) {
	t.mu.Lock()
	t.feedReply(b)
	t.mu.Unlock()
}

func (t *redisTracker) Clean() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return !t.bad && !t.multi && !t.watch && t.commands == t.replies &&
		t.req.state == rLine && t.args == 0 && t.req.line.empty() &&
		t.rep.state == rLine && t.depth == 0 && t.rep.line.empty()
}

// bulk skips the bytes of a bulk string and its CRLF, calling data with the string's
// bytes; it returns the rest of b, and done once the CRLF was read.
func (t *redisTracker) bulk(s *redisSide, b []byte, data func([]byte)) (rest []byte, done bool) {
	for len(b) > 0 {
		switch s.state {
		case rBulk:
			n := int64(len(b))
			if n > s.remain {
				n = s.remain
			}
			if data != nil {
				data(b[:n])
			}
			s.remain -= n
			b = b[n:]
			if s.remain == 0 {
				s.state = rCR
			}
		case rCR, rLF:
			want := byte('\r')
			if s.state == rLF {
				want = '\n'
			}
			if b[0] != want {
				t.bad = true
				return nil, false
			}
			b = b[1:]
			if s.state == rCR {
				s.state = rLF
			} else {
				s.state = rLine
				return b, true
			}
		}
	}
	return b, false
}

// lineOf returns the next complete line of b without its CRLF.
func (t *redisTracker) lineOf(s *redisSide, b []byte, crlf bool) (content, rest []byte, ok bool) {
	line, n, ok := s.line.next(b)
	rest = b[n:]
	if !ok {
		t.bad = t.bad || s.line.over
		return nil, rest, false
	}
	if crlf {
		content, ok = trimCRLF(line)
	} else { // an inline command may end in a bare '\n', as Redis allows
		content = bytes.TrimSuffix(line[:len(line)-1], []byte{'\r'})
		ok = bytes.IndexByte(content, '\r') < 0
	}
	if !ok {
		t.bad = true
	}
	return content, rest, ok
}

func (t *redisTracker) feedRequest(b []byte) {
	for len(b) > 0 && !t.bad {
		if t.req.state != rLine {
			var done bool
			b, done = t.bulk(&t.req, b, t.capture)
			if done {
				t.argDone()
			}
			continue
		}
		first := b[0]
		if !t.req.line.empty() {
			first = t.req.line.buf[0]
		}
		if t.args == 0 && first != '*' {
			var l []byte
			var ok bool
			if l, b, ok = t.lineOf(&t.req, b, false); ok {
				t.inline(l)
			}
			continue
		}
		l, rest, ok := t.lineOf(&t.req, b, true)
		b = rest
		if !ok {
			continue
		}
		n, ok := parseInt(l[min(1, len(l)):])
		switch {
		case len(l) == 0 && t.args == 0: // the line began with '*' (checked above)
			t.bad = true
		case t.args == 0 && l[0] == '*':
			if !ok || n <= 0 {
				t.bad = true // Redis answers nothing to an empty array: not worth the guess
				break
			}
			t.args, t.arg = n, 0
		case len(l) > 0 && l[0] == '$' && ok && n >= 0:
			t.req.remain, t.captured = n, 0
			if t.arg < 2 {
				t.nameLen[t.arg] = int(min(n, maxName+1))
				if n > maxName {
					t.nameLen[t.arg] = -1
				}
			}
			t.req.state = rBulk
			if n == 0 {
				t.req.state = rCR
			}
		default:
			t.bad = true
		}
	}
}

// capture keeps the first bytes of the command's first two arguments.
func (t *redisTracker) capture(b []byte) {
	if t.arg >= 2 || t.nameLen[t.arg] < 0 {
		return
	}
	t.captured += copy(t.name[t.arg][t.captured:t.nameLen[t.arg]], b)
}

func (t *redisTracker) argDone() {
	t.arg++
	t.args--
	if t.args == 0 {
		if t.arg < 2 {
			t.nameLen[1] = 0
		}
		t.command(t.name[0][:max(t.nameLen[0], 0)], t.name[1][:max(t.nameLen[1], 0)], t.nameLen[0] < 0)
	}
}

// inline handles a command sent as a line of words (as telnet users do). Quoting rules are
// Redis's own (sdssplitargs): a line with quotes is refused rather than re-implemented.
func (t *redisTracker) inline(l []byte) {
	if bytes.ContainsAny(l, "\"'\v\f") {
		t.bad = true
		return
	}
	var words [2][]byte
	n := 0
	for i := 0; i < len(l) && n < 2; {
		if l[i] == ' ' || l[i] == '\t' {
			i++
			continue
		}
		j := i
		for j < len(l) && l[j] != ' ' && l[j] != '\t' {
			j++
		}
		words[n] = l[i:j]
		n++
		i = j
	}
	if n == 0 {
		return // Redis ignores an empty line
	}
	long := len(words[0]) > maxName
	t.command(words[0], words[1], long)
}

// command accounts for one complete command: name and sub are its first two arguments
// (cut to maxName), long says the name was longer (so none the tracker knows).
func (t *redisTracker) command(name, sub []byte, long bool) {
	t.commands++
	if long {
		return
	}
	switch {
	case equalFold(name, "multi"):
		t.multi = true
	case equalFold(name, "watch"):
		t.watch = true
	case equalFold(name, "exec"), equalFold(name, "discard"), equalFold(name, "reset"):
		t.multi, t.watch = false, false
	case equalFold(name, "unwatch"):
		t.watch = false
	case equalFold(name, "subscribe"), equalFold(name, "psubscribe"), equalFold(name, "ssubscribe"),
		equalFold(name, "unsubscribe"), equalFold(name, "punsubscribe"), equalFold(name, "sunsubscribe"),
		equalFold(name, "monitor"), equalFold(name, "sync"), equalFold(name, "psync"),
		equalFold(name, "replconf"), equalFold(name, "quit"), equalFold(name, "shutdown"):
		// Replies no longer answer commands one for one, or the server hangs up.
		t.bad = true
	case equalFold(name, "client"):
		// REPLY OFF|SKIP silence replies; TRACKING and CACHING bring pushes and
		// redirections; KILL may close this very connection.
		if equalFold(sub, "reply") || equalFold(sub, "tracking") || equalFold(sub, "caching") || equalFold(sub, "kill") {
			t.bad = true
		}
	}
}

func (t *redisTracker) feedReply(b []byte) {
	for len(b) > 0 && !t.bad {
		if t.rep.state != rLine {
			var done bool
			if b, done = t.bulk(&t.rep, b, nil); done {
				t.valueDone()
			}
			continue
		}
		l, rest, ok := t.lineOf(&t.rep, b, true)
		b = rest
		if !ok {
			continue
		}
		if len(l) == 0 {
			t.bad = true
			break
		}
		t.typeLine(l[0], l[1:])
	}
}

// typeLine handles the first line of a RESP2 or RESP3 value.
func (t *redisTracker) typeLine(typ byte, l []byte) {
	switch typ {
	case '+', '-', ':', ',', '(', '_', '#':
		t.valueDone()
	case '$', '=', '!': // bulk string, verbatim string, bulk error
		n, ok := parseInt(l)
		switch {
		case ok && n == -1 && typ == '$':
			t.valueDone() // RESP2 null bulk string
		case !ok || n < 0:
			t.bad = true
		default:
			t.rep.remain, t.rep.state = n, rBulk
			if n == 0 {
				t.rep.state = rCR
			}
		}
	case '*', '~', '%', '|': // array, set, map, attribute
		n, ok := parseInt(l)
		switch {
		case ok && n == -1 && typ == '*':
			t.valueDone() // RESP2 null array
		case !ok || n < 0 || n > 1<<40:
			t.bad = true
		case n == 0 && typ == '|':
		case n == 0:
			t.valueDone()
		case t.depth == maxDepth:
			t.bad = true
		default:
			if typ == '%' || typ == '|' {
				n *= 2
			}
			t.stack[t.depth] = frame{remain: n, attr: typ == '|'}
			t.depth++
		}
	default:
		// '>' is a push (pub/sub, tracking): out of band, so replies no longer count
		// commands. Streamed strings and aggregates ('?' lengths) Redis never sends.
		t.bad = true
	}
}

// valueDone accounts for one complete value: an element of the aggregate being read or a
// whole reply.
func (t *redisTracker) valueDone() {
	for t.depth > 0 {
		top := &t.stack[t.depth-1]
		if top.remain--; top.remain > 0 {
			return
		}
		t.depth--
		if top.attr {
			return
		}
	}
	t.replies++
	if t.replies > t.commands {
		t.bad = true // a reply nobody asked for
	}
}
