package forward

import (
	"bufio"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/warmport/warmport/pool"
)

// SessionInfo is a finished session without its connections: one object of
// `stats --json`'s "recent" list and one row of its table.
type SessionInfo struct {
	ID      string     `json:"id,omitempty"` // the file's name; not stored in the file
	PID     int        `json:"pid"`
	Local   string     `json:"local"`
	Remote  string     `json:"remote"`
	Started time.Time  `json:"started"`
	Ended   time.Time  `json:"ended"`
	Dropped uint64     `json:"dropped"`
	Totals  Totals     `json:"totals"`
	Pool    pool.Stats `json:"pool"`
}

// Session is a finished session as the state directory keeps it. Its JSON
// is the Summary's plus "id" and "pid", with "connections" last so that
// reading a session's info can stop before the (up to 1000) records.
type Session struct {
	SessionInfo
	Connections []Record `json:"connections"`
}

// Summary is the session as forward printed it at exit.
func (s *Session) Summary() *Summary {
	conns := s.Connections
	if conns == nil {
		conns = []Record{}
	}
	return &Summary{Local: s.Local, Remote: s.Remote, Started: s.Started, Ended: s.Ended,
		Connections: conns, Dropped: s.Dropped, Totals: s.Totals, Pool: s.Pool}
}

// SaveSession adds sum to the history under a new ID, which it returns, and
// prunes the history to HistoryMax. Many processes may save at once: each
// file gets a name no other has (a hard link never replaces a file), and
// concurrent pruners only ever remove sessions older than HistoryMax others.
func (d StateDir) SaveSession(sum *Summary) (id string, err error) {
	dir, err := d.mkdir(sessionsDir)
	if err != nil {
		return "", err
	}
	s := Session{SessionInfo: SessionInfo{PID: os.Getpid(), Local: sum.Local, Remote: sum.Remote,
		Started: sum.Started, Ended: sum.Ended, Dropped: sum.Dropped, Totals: sum.Totals, Pool: sum.Pool},
		Connections: sum.Connections}
	data, err := json.Marshal(s)
	if err != nil {
		return "", err
	}
	tmp, err := writeTemp(dir, data, true)
	if err != nil {
		return "", err
	}
	defer os.Remove(tmp)
	ended := sum.Ended
	if ended.IsZero() {
		ended = time.Now()
	}
	for range 16 {
		id = newSessionID(ended)
		final := filepath.Join(dir, id+".json")
		err = os.Link(tmp, final)
		if errors.Is(err, fs.ErrExist) {
			continue
		}
		if err != nil { // no hard links on this file system: rename, after a look
			if _, serr := os.Lstat(final); serr == nil {
				continue
			}
			err = os.Rename(tmp, final)
		}
		if err != nil {
			return "", fmt.Errorf("save session: %w", err)
		}
		d.pruneSessions(dir)
		return id, nil
	}
	return "", fmt.Errorf("save session in %s: no free name after 16 tries", dir)
}

// newSessionID is the session's end time (UTC, so names sort by it) and 24
// random bits: 20251125-093100-4f2a9c.
func newSessionID(ended time.Time) string {
	var b [3]byte
	rand.Read(b[:])
	return ended.UTC().Format("20060102-150405") + "-" + hex.EncodeToString(b[:])
}

// sessionNames lists the saved sessions' file names, oldest first.
func sessionNames(dir string) ([]string, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var names []string
	for _, e := range ents {
		n := e.Name()
		if strings.HasPrefix(n, tmpPrefix) {
			removeIfOlder(filepath.Join(dir, n), staleTempAge)
			continue
		}
		if strings.HasSuffix(n, ".json") && !strings.HasPrefix(n, ".") {
			names = append(names, n)
		}
	}
	slices.Sort(names)
	return names, nil
}

// pruneSessions removes the oldest sessions beyond HistoryMax. Another
// process pruning at the same time may have removed one already: fine.
func (d StateDir) pruneSessions(dir string) {
	names, err := sessionNames(dir)
	if err != nil || len(names) <= HistoryMax {
		return
	}
	for _, n := range names[:len(names)-HistoryMax] {
		os.Remove(filepath.Join(dir, n)) // ENOENT: another pruner was first
	}
}

// Recent returns the saved sessions, newest first, without their
// connections. A missing sessions directory means none; a file that does
// not parse is skipped.
func (d StateDir) Recent() ([]SessionInfo, error) {
	dir := d.SessionsDir()
	names, err := sessionNames(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	out := make([]SessionInfo, 0, len(names))
	for _, n := range names {
		info, err := readSessionInfo(filepath.Join(dir, n))
		if errors.Is(err, fs.ErrNotExist) { // pruned meanwhile
			continue
		}
		if errors.Is(err, fs.ErrPermission) {
			return nil, err
		}
		if err != nil {
			continue
		}
		info.ID = strings.TrimSuffix(n, ".json")
		out = append(out, info)
	}
	slices.SortFunc(out, func(a, b SessionInfo) int {
		if c := b.Ended.Compare(a.Ended); c != 0 {
			return c
		}
		return strings.Compare(b.ID, a.ID)
	})
	return out, nil
}

// readSessionInfo decodes a session file's fields up to "connections" and
// stops there, so listing a hundred long sessions stays cheap.
func readSessionInfo(path string) (SessionInfo, error) {
	var info SessionInfo
	f, err := os.Open(path)
	if err != nil {
		return info, err
	}
	defer f.Close()
	dec := json.NewDecoder(bufio.NewReader(f))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return info, fmt.Errorf("%s: not a session", path)
	}
	fields := map[string]json.RawMessage{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return info, fmt.Errorf("%s: %w", path, err)
		}
		key, _ := tok.(string)
		if _, ok := fields["pool"]; ok && key == "connections" {
			break // SaveSession writes it after every field of SessionInfo
		}
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return info, fmt.Errorf("%s: %w", path, err)
		}
		if key != "connections" {
			fields[key] = v
		}
	}
	data, err := json.Marshal(fields)
	if err != nil {
		return info, err
	}
	if err := json.Unmarshal(data, &info); err != nil {
		return info, fmt.Errorf("%s: %w", path, err)
	}
	return info, nil
}

// Session reads the session id: an exact ID, or a prefix of exactly one.
// Its error wraps ErrNoSession when there is none, and says where it looked.
func (d StateDir) Session(id string) (*Session, error) {
	dir := d.SessionsDir()
	if id == "" || strings.ContainsAny(id, `/\`) || strings.HasPrefix(id, ".") {
		return nil, fmt.Errorf("%w %q: an ID looks like 20251125-093100-4f2a9c", ErrNoSession, id)
	}
	names, err := sessionNames(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w %q: %s does not exist, so no session has ended there yet", ErrNoSession, id, dir)
	}
	if err != nil {
		return nil, err
	}
	var match []string
	for _, n := range names {
		base := strings.TrimSuffix(n, ".json")
		if base == id {
			match = []string{n}
			break
		}
		if strings.HasPrefix(base, id) {
			match = append(match, n)
		}
	}
	switch {
	case len(match) == 0:
		return nil, fmt.Errorf("%w %q in %s (it keeps the last %d)", ErrNoSession, id, dir, HistoryMax)
	case len(match) > 1:
		return nil, fmt.Errorf("%w: %q is the start of %d session IDs in %s; give more of it", ErrNoSession, id, len(match), dir)
	}
	data, err := os.ReadFile(filepath.Join(dir, match[0]))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w %q in %s: pruned just now", ErrNoSession, id, dir)
	}
	if err != nil {
		return nil, err
	}
	var s Session
	if err := json.Unmarshal(data, &s); err != nil {
		return nil, fmt.Errorf("read %s: %w", filepath.Join(dir, match[0]), err)
	}
	s.ID = strings.TrimSuffix(match[0], ".json")
	if s.Connections == nil {
		s.Connections = []Record{}
	}
	return &s, nil
}
