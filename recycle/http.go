package recycle

import (
	"bytes"
	"strings"
	"sync"
)

// HTTP is HTTP/1.1 (--reuse http). It resets nothing: HTTP/1.1 keeps no state on a
// connection between complete exchanges, so a connection at a boundary is as good as new.
// What could make it otherwise (connection-bound NTLM or Negotiate authentication, an
// upgrade, CONNECT) is refused.
var HTTP Protocol = httpProtocol{}

type httpProtocol struct{}

func (httpProtocol) Name() string                    { return "http" }
func (httpProtocol) NewTracker() Tracker             { return &httpTracker{} }
func (httpProtocol) ResetRequest() []byte            { return nil }
func (httpProtocol) CheckReset([]byte) (bool, error) { return true, nil }

// maxPipeline bounds the requests a tracker remembers while their responses are
// outstanding; a client that pipelines more is doubtful.
const maxPipeline = 64

// httpState is where one direction's parser is within a message.
type httpState uint8

const (
	hStart     httpState = iota // before a request line or status line
	hHeader                     // in the header section
	hBody                       // in a Content-Length body: remain bytes to go
	hChunkSize                  // expecting a chunk-size line
	hChunkData                  // in a chunk: remain bytes to go
	hChunkEnd                   // expecting the CRLF after a chunk's data
	hTrailer                    // in the trailer section after the last chunk
)

// httpSide is the parser of one direction.
type httpSide struct {
	line   lineReader
	state  httpState
	remain int64 // bytes left in a body or chunk

	// The message being parsed.
	length   int64 // Content-Length, -1 when absent
	chunked  bool  // Transfer-Encoding: chunked
	close    bool  // Connection: close
	interim  bool  // a 1xx response (not 101)
	noBody   bool  // a response that has no body whatever its headers say (HEAD, 204, 304)
	response bool  // this side parses responses
}

type httpTracker struct {
	mu   sync.Mutex
	bad  bool // sticky: something doubtful was seen
	req  httpSide
	resp httpSide

	// Requests counted as they start (started), as they end (requested) and responses
	// as they end (answered); head[i%maxPipeline] says request i was a HEAD.
	started, requested, answered uint64
	head                         [maxPipeline]bool
}

func (t *httpTracker) Request(b []byte) {
	t.mu.Lock()
	t.req.response = false
	t.feed(&t.req, b)
	t.mu.Unlock()
}

func (t *httpTracker) Response(b []byte) {
	t.mu.Lock()
	t.resp.response = true
	t.feed(&t.resp, b)
	t.mu.Unlock()
}

func (t *httpTracker) Clean() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return !t.bad &&
		t.req.state == hStart && t.req.line.empty() &&
		t.resp.state == hStart && t.resp.line.empty() &&
		t.started == t.requested && t.answered == t.requested
}

func (t *httpTracker) feed(s *httpSide, b []byte) {
	for len(b) > 0 && !t.bad {
		switch s.state {
		case hBody, hChunkData:
			n := int64(len(b))
			if n > s.remain {
				n = s.remain
			}
			s.remain -= n
			b = b[n:]
			if s.remain == 0 {
				if s.state == hBody {
					t.end(s)
				} else {
					s.state = hChunkEnd
				}
			}
		default:
			line, n, ok := s.line.next(b)
			b = b[n:]
			if !ok {
				t.bad = t.bad || s.line.over
				continue
			}
			content, ok := trimCRLF(line)
			if !ok {
				t.bad = true // bare LF or stray CR: not worth guessing how the peer reads it
				break
			}
			t.line(s, content)
		}
	}
}

// line handles one line (without its CRLF) outside a body.
func (t *httpTracker) line(s *httpSide, l []byte) {
	switch s.state {
	case hStart:
		if s.response {
			t.statusLine(s, l)
		} else if len(l) > 0 { // servers ignore empty lines before a request (RFC 9112 2.2)
			t.requestLine(s, l)
		}
	case hHeader:
		if len(l) == 0 {
			t.headersDone(s)
			return
		}
		t.header(s, l)
	case hChunkSize:
		size, ok := chunkSize(l)
		switch {
		case !ok:
			t.bad = true
		case size == 0:
			s.state = hTrailer
		default:
			s.remain, s.state = size, hChunkData
		}
	case hChunkEnd:
		if len(l) != 0 {
			t.bad = true
		}
		s.state = hChunkSize
	case hTrailer:
		if len(l) == 0 {
			t.end(s)
			return
		}
		if _, _, ok := headerField(l); !ok {
			t.bad = true
		}
	}
}

// requestLine: method SP request-target SP HTTP/1.1. Other versions are refused: HTTP/1.0
// closes by default and its keep-alive is an extension not worth trusting.
func (t *httpTracker) requestLine(s *httpSide, l []byte) {
	sp := bytes.IndexByte(l, ' ')
	rest := l[sp+1:]
	sp2 := bytes.IndexByte(rest, ' ')
	if sp <= 0 || sp2 <= 0 || string(rest[sp2+1:]) != "HTTP/1.1" || !isToken(l[:sp]) {
		t.bad = true
		return
	}
	method := l[:sp]
	if string(method) == "CONNECT" || t.started-t.answered >= maxPipeline {
		t.bad = true // a tunnel is not HTTP any more
		return
	}
	t.head[t.started%maxPipeline] = string(method) == "HEAD"
	t.started++
	s.begin()
}

// statusLine: HTTP/1.1 SP 3DIGIT [SP reason].
func (t *httpTracker) statusLine(s *httpSide, l []byte) {
	if len(l) < 12 || string(l[:9]) != "HTTP/1.1 " || (len(l) > 12 && l[12] != ' ') {
		t.bad = true
		return
	}
	code, ok := parseUint(l[9:12])
	switch {
	case !ok || code < 100 || code > 599:
		t.bad = true
	case t.answered >= t.started:
		t.bad = true // a response nobody asked for
	case code == 101:
		t.bad = true // switching protocols: the connection is no longer HTTP
	case code < 200:
		s.begin()
		s.interim = true
	case t.answered >= t.requested:
		// A final response before its request ended: the server may drop the
		// rest of the request or close; either way the boundary is unknown.
		t.bad = true
	default:
		s.begin()
		s.noBody = code == 204 || code == 304 || t.head[t.answered%maxPipeline]
	}
}

func (s *httpSide) begin() {
	s.state = hHeader
	s.length, s.chunked, s.close, s.interim, s.noBody = -1, false, false, false, false
}

func (t *httpTracker) header(s *httpSide, l []byte) {
	name, value, ok := headerField(l)
	if !ok {
		t.bad = true
		return
	}
	switch {
	case equalFold(name, "content-length"):
		v, ok := parseUint(value)
		if !ok || s.length >= 0 { // duplicates are refused even when equal
			t.bad = true
		}
		s.length = v
	case equalFold(name, "transfer-encoding"):
		if s.chunked || !equalFold(value, "chunked") {
			t.bad = true
		}
		s.chunked = true
	case equalFold(name, "connection"):
		for len(value) > 0 {
			var tok []byte
			tok, value, _ = bytes.Cut(value, []byte{','})
			if equalFold(bytes.Trim(tok, " \t"), "close") {
				s.close = true
			}
		}
	case s.response:
		// A server may advertise Upgrade on any response; only a 101 acts on it.
	case equalFold(name, "upgrade"):
		t.bad = true
	case equalFold(name, "authorization"), equalFold(name, "proxy-authorization"):
		// NTLM and Negotiate authenticate the connection, not the request.
		if hasPrefixFold(value, "ntlm") || hasPrefixFold(value, "negotiate") {
			t.bad = true
		}
	}
}

// headersDone decides how the message's body is framed, or that it cannot be trusted.
func (t *httpTracker) headersDone(s *httpSide) {
	switch {
	case s.close || (s.chunked && s.length >= 0):
		t.bad = true
	case s.interim:
		s.state = hStart
	case s.noBody:
		t.end(s)
	case s.chunked:
		s.state = hChunkSize
	case s.length > 0:
		s.remain, s.state = s.length, hBody
	case s.length == 0 || !s.response:
		t.end(s)
	default:
		t.bad = true // a response delimited by the server's close
	}
}

func (t *httpTracker) end(s *httpSide) {
	s.state = hStart
	if s.response {
		t.answered++
	} else {
		t.requested++
	}
}

// headerField splits "name: value" and trims the value's whitespace. A line starting
// with whitespace (obsolete folding) or with space before the colon is refused.
func headerField(l []byte) (name, value []byte, ok bool) {
	colon := bytes.IndexByte(l, ':')
	if colon <= 0 || !isToken(l[:colon]) {
		return nil, nil, false
	}
	return l[:colon], bytes.Trim(l[colon+1:], " \t"), true
}

// chunkSize parses a chunk-size line: hex digits, then optionally ';' and extensions.
func chunkSize(l []byte) (int64, bool) {
	if i := bytes.IndexByte(l, ';'); i >= 0 {
		l = l[:i]
	}
	if len(l) == 0 || len(l) > 15 {
		return 0, false
	}
	var v int64
	for _, c := range l {
		switch {
		case '0' <= c && c <= '9':
			c -= '0'
		case 'a' <= c && c <= 'f':
			c -= 'a' - 10
		case 'A' <= c && c <= 'F':
			c -= 'A' - 10
		default:
			return 0, false
		}
		v = v<<4 | int64(c)
	}
	return v, true
}

// isToken reports whether b is a non-empty RFC 9110 token.
func isToken(b []byte) bool {
	if len(b) == 0 {
		return false
	}
	for _, c := range b {
		if c <= ' ' || c >= 0x7f || strings.IndexByte(`"(),/:;<=>?@[\]{}`, c) >= 0 {
			return false
		}
	}
	return true
}
