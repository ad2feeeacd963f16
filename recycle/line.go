package recycle

import "bytes"

// lineReader cuts a byte stream, fed in arbitrary chunks, into lines ending in '\n'.
// A line that lies whole inside one chunk is returned in place (no copy); only a line
// split across chunks is gathered in buf, which never exceeds maxLine.
type lineReader struct {
	buf  []byte
	over bool // a line exceeded maxLine: the stream is doubtful
}

// next returns the next complete line of b (with its '\n') and how many bytes of b it
// used. ok is false when b ended mid-line: its bytes are kept for the next call. The
// returned line may alias r.buf: use it before calling next again.
func (r *lineReader) next(b []byte) (line []byte, n int, ok bool) {
	i := bytes.IndexByte(b, '\n')
	if i < 0 {
		if len(r.buf)+len(b) > maxLine {
			r.over = true
		} else {
			r.buf = append(r.buf, b...)
		}
		return nil, len(b), false
	}
	n = i + 1
	if len(r.buf)+n > maxLine {
		r.over = true
		return nil, n, false
	}
	if len(r.buf) == 0 {
		return b[:n], n, true
	}
	line = append(r.buf, b[:n]...)
	r.buf = line[:0]
	if cap(r.buf) > 4<<10 {
		// A rare long line: let it go rather than hold it for the connection's life
		// (line still refers to it until the caller is done).
		r.buf = nil
	}
	return line, n, true
}

// empty reports whether no partial line is pending.
func (r *lineReader) empty() bool { return len(r.buf) == 0 }

// trimCRLF strips the "\r\n" ending a line; ok is false for a bare '\n' or a stray '\r'.
func trimCRLF(line []byte) (content []byte, ok bool) {
	n := len(line)
	if n < 2 || line[n-2] != '\r' {
		return nil, false
	}
	content = line[:n-2]
	if bytes.IndexByte(content, '\r') >= 0 {
		return nil, false
	}
	return content, true
}

// parseUint parses a non-empty string of decimal digits no longer than 18 (so it cannot
// overflow an int64).
func parseUint(b []byte) (int64, bool) {
	if len(b) == 0 || len(b) > 18 {
		return 0, false
	}
	var v int64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		v = v*10 + int64(c-'0')
	}
	return v, true
}

// parseInt is parseUint with an optional leading '-'.
func parseInt(b []byte) (int64, bool) {
	if len(b) > 0 && b[0] == '-' {
		v, ok := parseUint(b[1:])
		return -v, ok
	}
	return parseUint(b)
}

// equalFold reports whether b equals the lower-case ASCII string s, ignoring ASCII case.
func equalFold(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := range len(b) {
		c := b[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != s[i] {
			return false
		}
	}
	return true
}

// hasPrefixFold reports whether b starts with the lower-case ASCII string s, ignoring case.
func hasPrefixFold(b []byte, s string) bool {
	return len(b) >= len(s) && equalFold(b[:len(s)], s)
}
