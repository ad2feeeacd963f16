package recycle

// HTTP is HTTP/1.1 (--reuse http). It resets nothing: HTTP/1.1 keeps no state on a
// connection between complete exchanges, so a connection at a boundary is as good as new.
var HTTP Protocol = httpProtocol{}

type httpProtocol struct{}

func (httpProtocol) Name() string                          { return "http" }
func (httpProtocol) NewTracker() Tracker                   { return &httpTracker{} }
func (httpProtocol) ResetRequest() []byte                  { return nil }
func (httpProtocol) CheckReset(reply []byte) (bool, error) { return true, nil }

type httpTracker struct{ bad bool }

func (t *httpTracker) Request(b []byte)  { t.bad = true }
func (t *httpTracker) Response(b []byte) { t.bad = true }
func (t *httpTracker) Clean() bool       { return !t.bad }
