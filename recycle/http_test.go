package recycle

import (
	"strings"
	"testing"
)

const (
	get     = "GET / HTTP/1.1|Host: a||"
	ok5     = "HTTP/1.1 200 OK|Content-Length: 5||hello"
	chunked = "HTTP/1.1 200 OK|Transfer-Encoding: chunked||5;ext=1|hello|0||"
)

func httpCases() []streamCase {
	long := strings.Repeat("a", maxLine)
	return []streamCase{
		{"get and a sized response", []step{rq(get, false), rs(ok5, true)}},
		{"two exchanges", []step{rq(get, false), rs(ok5, true), rq(get, false), rs(ok5, true)}},
		{"a response without reason phrase", []step{rq(get, false), rs("HTTP/1.1 200|Content-Length: 0||", true)}},
		{"chunked response with extension and trailer", []step{rq(get, false),
			rs("HTTP/1.1 200 OK|Transfer-Encoding: Chunked||5;x=y|hello|A|0123456789|0|Trailer-X: 1||", true)}},
		{"chunked response", []step{rq(get, false), rs(chunked, true), rq(get, false), rs(chunked, true)}},
		{"head ignores content-length", []step{rq("HEAD / HTTP/1.1|Host: a||", false),
			rs("HTTP/1.1 200 OK|Content-Length: 100||", true), rq(get, false), rs(ok5, true)}},
		{"head ignores chunked", []step{rq("HEAD / HTTP/1.1|Host: a||", false),
			rs("HTTP/1.1 200 OK|Transfer-Encoding: chunked||", true)}},
		{"204 and 304 have no body", []step{rq(get, false), rs("HTTP/1.1 204 No Content||", true),
			rq(get, false), rs("HTTP/1.1 304 Not Modified|Content-Length: 7||", true)}},
		{"100-continue", []step{rq("POST / HTTP/1.1|Expect: 100-continue|Content-Length: 3||", false),
			rs("HTTP/1.1 100 Continue||", false), rq("abc", false), rs(ok5, true)}},
		{"103 early hints", []step{rq(get, false), rs("HTTP/1.1 103 Early Hints|Link: </a>||", false), rs(ok5, true)}},
		{"post with content-length", []step{rq("POST /x HTTP/1.1|Content-Length: 4||abcd", false), rs(ok5, true)}},
		{"post chunked with trailer", []step{rq("POST /x HTTP/1.1|Transfer-Encoding: chunked||3|abc|0|T: v||", false), rs(ok5, true)}},
		{"pipelined, answered in turn", []step{rq(get+"HEAD / HTTP/1.1||"+get, false), rs(ok5, false),
			rs("HTTP/1.1 200 OK|Content-Length: 9||", false), rs(chunked, true)}},
		{"pipelined, asked mid-way", []step{rq(get+get, false), rs(ok5, false)}},
		{"keep-alive and an advertised upgrade", []step{rq("GET / HTTP/1.1|Connection: keep-alive||", false),
			rs("HTTP/1.1 200 OK|Upgrade: h2c|Connection: Upgrade, Keep-Alive|Content-Length: 0||", true)}},
		{"empty lines before a request", []step{rqMid("||"+get, false), rs(ok5, true)}},
		{"partial request", []step{rq(get, false), rs(ok5, true), rq("GET / HTTP/1.1|Ho", false)}},
		{"partial body", []step{rq(get, false), rs("HTTP/1.1 200 OK|Content-Length: 5||hel", false)}},
		{"partial chunk end", []step{rq(get, false), rs("HTTP/1.1 200 OK|Transfer-Encoding: chunked||0|", false)}},

		{"response connection close", []step{rq(get, false),
			rs("HTTP/1.1 200 OK|Connection: close|Content-Length: 5||hello", false), rq(get, false), rs(ok5, false)}},
		{"request connection close", []step{rq("GET / HTTP/1.1|Connection: keep-alive, Close||", false), rs(ok5, false)}},
		{"http/1.0 request", []step{rq("GET / HTTP/1.0|Connection: keep-alive||", false), rs(ok5, false)}},
		{"http/1.0 response", []step{rq(get, false), rs("HTTP/1.0 200 OK|Content-Length: 5||hello", false)}},
		{"101 switching", []step{rq("GET / HTTP/1.1|Upgrade: websocket|Connection: Upgrade||", false),
			rs("HTTP/1.1 101 Switching Protocols||", false)}},
		{"request upgrade declined", []step{rq("GET / HTTP/1.1|Upgrade: h2c||", false), rs(ok5, false)}},
		{"connect", []step{rq("CONNECT a:443 HTTP/1.1||", false), rs("HTTP/1.1 200 OK||", false)}},
		{"unsolicited response", []step{rq(get, false), rs(ok5, true), rs(ok5, false), rq(get, false), rs(ok5, false)}},
		{"byte after a response", []step{rq(get, false), {data: ok5 + "x", midOK: true}}},
		{"response before any request", []step{rs(ok5, false), rq(get, false)}},
		{"final response before the request ended", []step{rq("POST / HTTP/1.1|Content-Length: 10||abc", false),
			rs("HTTP/1.1 413 Too Large|Content-Length: 0||", false), rq("defghij", false)}},
		{"duplicate equal content-length", []step{rq(get, false), rs("HTTP/1.1 200 OK|Content-Length: 5|Content-Length: 5||hello", false)}},
		{"content-length list", []step{rq(get, false), rs("HTTP/1.1 200 OK|Content-Length: 5, 5||hello", false)}},
		{"content-length and chunked", []step{rq(get, false), rs("HTTP/1.1 200 OK|Content-Length: 5|Transfer-Encoding: chunked||0||", false)}},
		{"request content-length and chunked", []step{rq("POST / HTTP/1.1|Transfer-Encoding: chunked|Content-Length: 3||0||", false), rs(ok5, false)}},
		{"transfer-encoding gzip", []step{rq(get, false), rs("HTTP/1.1 200 OK|Transfer-Encoding: gzip, chunked||0||", false)}},
		{"transfer-encoding twice", []step{rq(get, false), rs("HTTP/1.1 200 OK|Transfer-Encoding: chunked|Transfer-Encoding: chunked||0||", false)}},
		{"close-delimited response", []step{rq(get, false), rs("HTTP/1.1 200 OK||hello", false)}},
		{"bare LF", []step{rq("GET / HTTP/1.1\nHost: a\n\n", false), rs(ok5, false)}},
		{"obsolete folding", []step{rq("GET / HTTP/1.1|X: a| b||", false), rs(ok5, false)}},
		{"space before colon", []step{rq(get, false), rs("HTTP/1.1 200 OK|Content-Length : 5||hello", false)}},
		{"negative content-length", []step{rq(get, false), rs("HTTP/1.1 200 OK|Content-Length: -1||", false)}},
		{"bad status", []step{rq(get, false), rs("HTTP/1.1 2x0 OK|Content-Length: 0||", false)}},
		{"bad chunk size", []step{rq(get, false), rs("HTTP/1.1 200 OK|Transfer-Encoding: chunked||zz|", false)}},
		{"chunk without its CRLF", []step{rq(get, false), rs("HTTP/1.1 200 OK|Transfer-Encoding: chunked||1|ab|0||", false)}},
		{"bad request line", []step{rq("GET /|Host: a||", false), rs(ok5, false)}},
		{"ntlm", []step{rq("GET / HTTP/1.1|Authorization: NTLM TlRMTVNTUAABAAAA||", false), rs(ok5, false)}},
		{"header over the bound", []step{rq("GET / HTTP/1.1|X: "+long+"||", false), rs(ok5, false)}},
		{"chunk size overflow", []step{rq(get, false), rs("HTTP/1.1 200 OK|Transfer-Encoding: chunked||ffffffffffffffff|", false)}},
		{"pipeline too deep", []step{rq(strings.Repeat(get, maxPipeline+1), false), rs(strings.Repeat(ok5, maxPipeline+1), false)}},
	}
}

func TestHTTPTracker(t *testing.T) {
	for _, c := range httpCases() {
		c.steps = crlfSteps(c.steps)
		t.Run(c.name, func(t *testing.T) { runStream(t, HTTP, c) })
	}
}

func crlfSteps(steps []step) []step {
	out := make([]step, len(steps))
	for i, s := range steps {
		s.data = crlf(s.data)
		out[i] = s
	}
	return out
}

// A tracker stays doubtful: a clean exchange after a doubtful one does not make it clean.
func TestHTTPDoubtIsSticky(t *testing.T) {
	tr := HTTP.NewTracker()
	tr.Request([]byte(crlf(get)))
	tr.Response([]byte(crlf("HTTP/1.1 200 OK||hello"))) // close-delimited
	for range 3 {
		tr.Request([]byte(crlf(get)))
		tr.Response([]byte(crlf(ok5)))
		if tr.Clean() {
			t.Fatalf("Clean() = true after a close-delimited response; want false for the connection's life")
		}
	}
}

func TestHTTPReset(t *testing.T) {
	if r := HTTP.ResetRequest(); r != nil {
		t.Fatalf("ResetRequest() = %q; want nil", r)
	}
}
