package recycle

import (
	"strings"
	"testing"
)

// Benchmarks: one exchange per op, fed as a relay would (each direction's bytes in one
// chunk, or in reads of readSize). MB/s counts both directions.

const readSize = 16 << 10

func feedChunks(f func([]byte), b []byte) {
	for len(b) > 0 {
		n := min(len(b), readSize)
		f(b[:n])
		b = b[n:]
	}
}

func benchExchange(b *testing.B, p Protocol, req, resp string) {
	tr := p.NewTracker()
	rq, rs := []byte(req), []byte(resp)
	b.SetBytes(int64(len(rq) + len(rs)))
	b.ReportAllocs()
	for b.Loop() {
		feedChunks(tr.Request, rq)
		feedChunks(tr.Response, rs)
	}
	if !tr.Clean() {
		b.Fatal("Clean() = false after the exchanges; want true")
	}
}

// A browser-like GET and a small JSON reply: headers dominate.
const benchGET = "GET /api/v1/items?page=2 HTTP/1.1\r\nHost: example.com\r\nUser-Agent: Mozilla/5.0 (X11; Linux x86_64) Gecko/20100101 Firefox/120.0\r\n" +
	"Accept: application/json\r\nAccept-Language: en-US,en;q=0.5\r\nAccept-Encoding: gzip, deflate, br\r\nConnection: keep-alive\r\n" +
	"Cookie: session=0123456789abcdef0123456789abcdef; theme=dark\r\n\r\n"

func benchResponse(body int) string {
	return "HTTP/1.1 200 OK\r\nServer: nginx/1.22.1\r\nDate: Tue, 01 Dec 2026 21:00:00 GMT\r\nContent-Type: application/json\r\n" +
		"Content-Length: " + itoa(body) + "\r\nConnection: keep-alive\r\nCache-Control: no-cache\r\nETag: \"5f3a-1b2c\"\r\n\r\n" +
		strings.Repeat("x", body)
}

func chunkedResponse(chunks, size int) string {
	var b strings.Builder
	b.WriteString("HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nTransfer-Encoding: chunked\r\n\r\n")
	for range chunks {
		b.WriteString(strings.ToLower(strings.TrimLeft(hex(size), "0")) + "\r\n" + strings.Repeat("y", size) + "\r\n")
	}
	b.WriteString("0\r\n\r\n")
	return b.String()
}

func hex(n int) string {
	const digits = "0123456789abcdef"
	s := ""
	for ; n > 0; n >>= 4 {
		s = string(digits[n&15]) + s
	}
	return s
}

func BenchmarkHTTPSmall(b *testing.B)   { benchExchange(b, HTTP, benchGET, benchResponse(200)) }
func BenchmarkHTTP64K(b *testing.B)     { benchExchange(b, HTTP, benchGET, benchResponse(64<<10)) }
func BenchmarkHTTPChunked(b *testing.B) { benchExchange(b, HTTP, benchGET, chunkedResponse(16, 4096)) }

// redis-benchmark's SET/GET with 3-byte values, pipelined 16 deep (-P 16), and GETs of
// 1 KiB values.
func BenchmarkRedisSetGetPipelined(b *testing.B) {
	var req, resp strings.Builder
	for i := range 8 {
		req.WriteString(cmd("SET", "key:"+itoa(100000+i), "xxx") + cmd("GET", "key:"+itoa(100000+i)))
		resp.WriteString("+OK\r\n$3\r\nxxx\r\n")
	}
	benchExchange(b, Redis, req.String(), resp.String())
}

func BenchmarkRedisGet1K(b *testing.B) {
	v := strings.Repeat("v", 1024)
	benchExchange(b, Redis, cmd("GET", "key:000000012345"), "$1024\r\n"+v+"\r\n")
}

func BenchmarkRedisHGetAll(b *testing.B) {
	var resp strings.Builder
	resp.WriteString("*40\r\n")
	for i := range 20 {
		resp.WriteString("$8\r\nfield" + itoa(100+i) + "\r\n$16\r\n" + strings.Repeat("z", 16) + "\r\n")
	}
	benchExchange(b, Redis, cmd("HGETALL", "user:1"), resp.String())
}
