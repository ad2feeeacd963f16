package state

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/warmport/warmport/session"
)

// FuzzDecode feeds the state files' decoders what a hostile or broken file
// might hold: they never panic, and what decodeSessionInfo returns for a
// file that decodeSession also accepts agrees with it when the file is in
// SaveSession's field order.
func FuzzDecode(f *testing.F) {
	ended := time.Date(2025, 11, 25, 9, 31, 0, 0, time.UTC)
	sess, _ := json.Marshal(Session{SessionInfo: SessionInfo{PID: 7, Local: "127.0.0.1:1", Remote: "db:5432",
		Via: "deploy@10.0.0.5:22", Started: ended.Add(-time.Minute), Ended: ended, Dropped: 3, Totals: session.Totals{Connections: 4}},
		Connections: []session.Record{{ID: 1, Client: "127.0.0.1:2", ClosedBy: "client"}}})
	snap, _ := json.Marshal(Snapshot{PID: 7, Local: "127.0.0.1:1", Active: 1, ProcStart: 99})
	for _, seed := range []string{string(sess), string(snap), "", "{", "[]", "null", `{"pool":{},"connections":[`,
		`{"pid":1}`, `{"pid":"1"}`, `{"pool":1,"connections":[],"pid":2}`, "{\"local\":\"\x1b[31m\"}", `{"started":"x"}`, `[{"pid":7,"name":"db"},{"pid":7,"name":"cache"}]`, "[{}]", "[1]"} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		decodeSnapshot(data)
		decodeSnapshots(data)
		_, ierr := decodeSessionInfo(data)
		s, serr := decodeSession(data)
		if ierr != nil || serr != nil {
			return
		}
		// Re-encoded in SaveSession's order, both decoders must agree.
		again, err := json.Marshal(s)
		if err != nil {
			return
		}
		info2, err := decodeSessionInfo(again)
		if err != nil {
			t.Fatalf("decodeSessionInfo of a re-encoded session: %v\n%s", err, again)
		}
		if info2.Local != s.Local || info2.Remote != s.Remote || info2.Via != s.Via || info2.PID != s.PID || info2.Totals != s.Totals ||
			info2.Pool != s.Pool || info2.Dropped != s.Dropped || !info2.Ended.Equal(s.Ended) {
			t.Fatalf("info %+v; session %+v", info2, s.SessionInfo)
		}
	})
}
