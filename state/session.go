package state

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/warmport/warmport/pool"
	"github.com/warmport/warmport/session"
)

// SessionInfo is a finished session without its connections: one object of
// `stats --json`'s "recent" list and one row of its table.
type SessionInfo struct {
	ID      string         `json:"id,omitempty"` // the file's name; not stored in the file
	PID     int            `json:"pid"`
	Name    string         `json:"name"` // the forward's name in `warmport up`'s profile; "" for forward
	Local   string         `json:"local"`
	Remote  string         `json:"remote"`
	Via     string         `json:"via"` // the --via SSH server, user@host:port; "" without
	Started time.Time      `json:"started"`
	Ended   time.Time      `json:"ended"`
	Dropped uint64         `json:"dropped"`
	Totals  session.Totals `json:"totals"`
	Pool    pool.Stats     `json:"pool"`
}

// Session is a finished session as the state directory keeps it. Its JSON
// is the Summary's plus "id" and "pid", with "connections" last so that
// reading a session's info can stop before the (up to 1000) records.
type Session struct {
	SessionInfo
	Connections []session.Record `json:"connections"`
}

// Summary is the session as forward printed it at exit.
func (s *Session) Summary() *session.Summary {
	conns := s.Connections
	if conns == nil {
		conns = []session.Record{}
	}
	return &session.Summary{Local: s.Local, Remote: s.Remote, Via: s.Via, Started: s.Started, Ended: s.Ended,
		Connections: conns, Dropped: s.Dropped, Totals: s.Totals, Pool: s.Pool}
}

// SaveSession adds sum to the history under a new ID, which it returns, and
// prunes the history to HistoryMax. Many processes may save at once: each
// file gets a name no other has (a hard link never replaces a file), and
// concurrent pruners only ever remove sessions older than HistoryMax others.
func (d *Dir) SaveSession(sum *session.Summary) (id string, err error) {
	return d.SaveNamedSession("", sum)
}

// SaveNamedSession is SaveSession for the forward called name in `warmport
// up`'s profile.
func (d *Dir) SaveNamedSession(name string, sum *session.Summary) (id string, err error) {
	dir, err := d.sub(sessionsDir, true)
	if err != nil {
		return "", err
	}
	defer dir.close()
	s := Session{SessionInfo: SessionInfo{PID: os.Getpid(), Name: name, Local: sum.Local, Remote: sum.Remote, Via: sum.Via,
		Started: sum.Started, Ended: sum.Ended, Dropped: sum.Dropped, Totals: sum.Totals, Pool: sum.Pool},
		Connections: sum.Connections}
	data, err := json.Marshal(s)
	if err != nil {
		return "", err
	}
	tmp, err := dir.writeTemp(data, true)
	if err != nil {
		return "", err
	}
	defer dir.remove(tmp, 0)
	ended := sum.Ended
	if ended.IsZero() {
		ended = time.Now()
	}
	for range 16 {
		id = newSessionID(ended)
		final := id + ".json"
		err = dir.link(tmp, final)
		if errors.Is(err, fs.ErrExist) {
			continue
		}
		if errors.Is(err, errors.ErrUnsupported) { // no hard links here: rename, after a look
			if dir.isRegular(final) {
				continue
			}
			err = dir.rename(tmp, final)
		}
		if err != nil {
			return "", fmt.Errorf("save session: %w", err)
		}
		pruneSessions(dir)
		return id, nil
	}
	return "", fmt.Errorf("save session in %s: no free name after 16 tries", dir.path)
}

// newSessionID is the session's end time (UTC, so names sort by it) and 24
// random bits: 20251125-093100-4f2a9c.
func newSessionID(ended time.Time) string {
	var b [3]byte
	rand.Read(b[:])
	return ended.UTC().Format("20060102-150405") + "-" + hex.EncodeToString(b[:])
}

// sessionNames lists the saved sessions' file names, oldest first, and
// removes temporary files left by dead writers.
func sessionNames(dir *dirFD) ([]string, error) {
	all, err := dir.names()
	if err != nil {
		return nil, err
	}
	var names []string
	for _, n := range all {
		switch {
		case isTempName(n):
			dir.remove(n, staleTempAge)
		case isSessionName(n):
			names = append(names, n)
		}
	}
	slices.Sort(names)
	return names, nil
}

// pruneSessions removes the oldest sessions beyond HistoryMax. Another
// process pruning at the same time may have removed one already: fine.
func pruneSessions(dir *dirFD) {
	names, err := sessionNames(dir)
	if err != nil || len(names) <= HistoryMax {
		return
	}
	for _, n := range names[:len(names)-HistoryMax] {
		dir.remove(n, 0) // ENOENT: another pruner was first
	}
}

// Recent returns the saved sessions, newest first, without their
// connections. A missing sessions directory means none; a file that does
// not parse, is not a regular file or is too big is skipped.
func (d *Dir) Recent() ([]SessionInfo, error) {
	dir, err := d.sub(sessionsDir, false)
	if err != nil || dir == nil {
		return nil, err
	}
	defer dir.close()
	names, err := sessionNames(dir)
	if err != nil {
		return nil, err
	}
	out := make([]SessionInfo, 0, len(names))
	for _, n := range names {
		data, err := dir.readFile(n)
		if errors.Is(err, fs.ErrPermission) {
			return nil, err
		}
		if err != nil { // pruned meanwhile, or not ours
			continue
		}
		info, err := decodeSessionInfo(data)
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

// decodeSessionInfo decodes a session file's fields up to "connections"
// and stops there, so listing a hundred long sessions stays cheap.
func decodeSessionInfo(data []byte) (SessionInfo, error) {
	var info SessionInfo
	dec := json.NewDecoder(bytes.NewReader(data))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return info, errors.New("not a session")
	}
	fields := map[string]json.RawMessage{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return info, err
		}
		key, _ := tok.(string)
		if _, ok := fields["pool"]; ok && key == "connections" {
			break // SaveSession writes it after every field of SessionInfo
		}
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return info, err
		}
		if key != "connections" && key != "id" {
			fields[key] = v
		}
	}
	data, err := json.Marshal(fields)
	if err != nil {
		return info, err
	}
	err = json.Unmarshal(data, &info)
	return info, err
}

// decodeSession parses a whole session file.
func decodeSession(data []byte) (*Session, error) {
	var s Session
	if err := json.Unmarshal(data, &s); err != nil {
		return nil, err
	}
	s.ID = ""
	if s.Connections == nil {
		s.Connections = []session.Record{}
	}
	return &s, nil
}

// Session reads the session id: an exact ID, or a prefix of exactly one.
// Its error wraps ErrNoSession when there is none, and says where it looked.
func (d *Dir) Session(id string) (*Session, error) {
	where := d.SessionsPath()
	if id == "" || strings.ContainsAny(id, `/\`) || strings.HasPrefix(id, ".") {
		return nil, fmt.Errorf("%w %q: an ID looks like 20251125-093100-4f2a9c", ErrNoSession, id)
	}
	dir, err := d.sub(sessionsDir, false)
	if err != nil {
		return nil, err
	}
	if dir == nil {
		return nil, fmt.Errorf("%w %q: %s does not exist, so no session has ended there yet", ErrNoSession, id, where)
	}
	defer dir.close()
	names, err := sessionNames(dir)
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
		return nil, fmt.Errorf("%w %q in %s (it keeps the last %d)", ErrNoSession, id, where, HistoryMax)
	case len(match) > 1:
		return nil, fmt.Errorf("%w: %q is the start of %d session IDs in %s; give more of it", ErrNoSession, id, len(match), where)
	}
	data, err := dir.readFile(match[0])
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w %q in %s: pruned just now", ErrNoSession, id, where)
	}
	if err != nil {
		return nil, err
	}
	s, err := decodeSession(data)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", dir.path+string(os.PathSeparator)+match[0], err)
	}
	s.ID = strings.TrimSuffix(match[0], ".json")
	return s, nil
}
