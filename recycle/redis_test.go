package recycle

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

// cmd encodes a command as a RESP array of bulk strings, as clients send it.
func cmd(args ...string) string {
	var b strings.Builder
	b.WriteString("*" + itoa(len(args)) + "\r\n")
	for _, a := range args {
		b.WriteString("$" + itoa(len(a)) + "\r\n" + a + "\r\n")
	}
	return b.String()
}

func itoa(n int) string {
	if n == 0 {
		return "0"
	}
	var d []byte
	for ; n > 0; n /= 10 {
		d = append([]byte{byte('0' + n%10)}, d...)
	}
	return string(d)
}

func redisCases() []streamCase {
	big := strings.Repeat("v", 3*maxLine)
	deep := strings.Repeat("*1\r\n", maxDepth+1) + ":1\r\n"
	return []streamCase{
		{"ping", []step{rq(cmd("PING"), false), rs("+PONG\r\n", true)}},
		{"set get null", []step{rq(cmd("SET", "k", "v"), false), rs("+OK\r\n", true),
			rq(cmd("GET", "k"), false), rs("$1\r\nv\r\n", true), rq(cmd("GET", "x"), false), rs("$-1\r\n", true)}},
		{"empty bulk argument and reply", []step{rq(cmd("SET", "k", ""), false), rs("+OK\r\n", true),
			rq(cmd("GET", "k"), false), rs("$0\r\n\r\n", true)}},
		{"pipelined", []step{rq(cmd("INCR", "a")+cmd("INCR", "a")+cmd("GET", "a"), false),
			rs(":1\r\n", false), rs(":2\r\n", false), rs("$1\r\n2\r\n", true)}},
		{"error reply counts", []step{rq(cmd("NOPE"), false), rs("-ERR unknown command 'NOPE'\r\n", true)}},
		{"inline", []step{rq("PING\r\n", false), rs("+PONG\r\n", true), rq("set  k\tv\n", false), rs("+OK\r\n", true)}},
		{"inline empty line", []step{rqMid("\r\n\nPING\r\n", false), rs("+PONG\r\n", true)}},
		{"big bulk reply", []step{rq(cmd("GET", "big"), false), rs("$"+itoa(len(big))+"\r\n"+big+"\r\n", true)}},
		{"big argument", []step{rq(cmd("SET", "big", big), false), rs("+OK\r\n", true)}},
		{"long command name", []step{rq(cmd("GEORADIUSBYMEMBER_RO", "k", "m", "1", "km"), false), rs("*0\r\n", true)}},
		{"nested arrays", []step{rq(cmd("XRANGE", "s", "-", "+"), false),
			rs("*2\r\n*2\r\n$3\r\n1-0\r\n*2\r\n$1\r\nf\r\n$1\r\nv\r\n*2\r\n$3\r\n2-0\r\n*-1\r\n", true)}},
		{"resp3 types", []step{rq(cmd("HELLO", "3"), false),
			rs("%2\r\n+server\r\n$5\r\nredis\r\n+modules\r\n*0\r\n", true),
			rq(cmd("X")+cmd("X")+cmd("X")+cmd("X")+cmd("X")+cmd("X")+cmd("X")+cmd("X"), false),
			rs("_\r\n,3.14\r\n#t\r\n(3492890328409238509324850943850943825024385\r\n=15\r\ntxt:Some string\r\n~2\r\n:1\r\n:2\r\n!5\r\nERR x\r\n", false),
			rs("|1\r\n+ttl\r\n:3600\r\n*2\r\n|1\r\n+a\r\n+b\r\n:1\r\n:2\r\n", true)}},
		{"multi exec", []step{rq(cmd("MULTI"), false), rs("+OK\r\n", false), rq(cmd("SET", "k", "v"), false),
			rs("+QUEUED\r\n", false), rq(cmd("EXEC"), false), rs("*1\r\n+OK\r\n", true)}},
		{"multi discard lowercase", []step{rq(cmd("multi"), false), rs("+OK\r\n", false), rq(cmd("discard"), false), rs("+OK\r\n", true)}},
		{"multi then abandoned", []step{rq(cmd("MULTI")+cmd("SET", "k", "v"), false), rs("+OK\r\n+QUEUED\r\n", false)}},
		{"watch unwatch", []step{rq(cmd("WATCH", "k"), false), rs("+OK\r\n", false), rq(cmd("UNWATCH"), false), rs("+OK\r\n", true)}},
		{"watch multi exec", []step{rq(cmd("WATCH", "k")+cmd("MULTI")+cmd("INCR", "k")+cmd("EXEC"), false),
			rs("+OK\r\n+OK\r\n+QUEUED\r\n", false), rs("*-1\r\n", true)}},
		{"state reset clears", []step{rq(cmd("SELECT", "5")+cmd("CLIENT", "SETNAME", "x")+cmd("AUTH", "p"), false),
			rs("+OK\r\n+OK\r\n+OK\r\n", true)}},
		{"blpop pending then answered", []step{rq(cmd("BLPOP", "q", "0"), false), rs("*2\r\n$1\r\nq\r\n$3\r\njob\r\n", true)}},
		{"blpop abandoned", []step{rq(cmd("BLPOP", "q", "0"), false)}},
		{"xread block pending then answered", []step{rq(cmd("XREAD", "BLOCK", "0", "STREAMS", "s", "$"), false),
			rs("*1\r\n*2\r\n$1\r\ns\r\n*1\r\n*2\r\n$3\r\n1-0\r\n*2\r\n$1\r\nf\r\n$1\r\nv\r\n", true)}},
		{"wait pending", []step{rq(cmd("SET", "k", "v")+cmd("WAIT", "1", "0"), false), rs("+OK\r\n", false)}},
		{"partial command", []step{rq("*2\r\n$3\r\nGET\r\n$1\r\n", false)}},
		{"partial reply", []step{rq(cmd("GET", "k"), false), rs("$5\r\nhel", false)}},

		{"subscribe", []step{rq(cmd("SUBSCRIBE", "c"), false), rs("*3\r\n$9\r\nsubscribe\r\n$1\r\nc\r\n:1\r\n", false),
			rq(cmd("UNSUBSCRIBE"), false), rs("*3\r\n$11\r\nunsubscribe\r\n$1\r\nc\r\n:0\r\n", false), rq(cmd("PING"), false), rs("+PONG\r\n", false)}},
		{"psubscribe", []step{rq(cmd("PSUBSCRIBE", "c*"), false), rs("*3\r\n$10\r\npsubscribe\r\n$2\r\nc*\r\n:1\r\n", false)}},
		{"ssubscribe inline", []step{rq("ssubscribe c\r\n", false), rs("*3\r\n$10\r\nssubscribe\r\n$1\r\nc\r\n:1\r\n", false)}},
		{"monitor", []step{rq(cmd("MONITOR"), false), rs("+OK\r\n", false)}},
		{"client reply off", []step{rq(cmd("CLIENT", "REPLY", "OFF"), false), rq(cmd("PING"), false)}},
		{"client reply skip", []step{rq(cmd("client", "reply", "skip")+cmd("PING")+cmd("PING"), false), rs("+PONG\r\n", false)}},
		{"client tracking", []step{rq(cmd("CLIENT", "TRACKING", "on"), false), rs("+OK\r\n", false)}},
		{"quit", []step{rq(cmd("QUIT"), false), rs("+OK\r\n", false)}},
		{"push frame", []step{rq(cmd("GET", "k"), false), rs(">2\r\n+invalidate\r\n*1\r\n$1\r\nk\r\n$-1\r\n", false)}},
		{"unsolicited reply", []step{rq(cmd("PING"), false), rs("+PONG\r\n", true), rs("-ERR max clients\r\n", false), rq(cmd("PING"), false), rs("+PONG\r\n", false)}},
		{"reply before any command", []step{rs("-ERR max number of clients reached\r\n", false), rq(cmd("PING"), false)}},
		{"empty array command", []step{rq("*0\r\n", false), rq(cmd("PING"), false), rs("+PONG\r\n", false)}},
		{"argument not bulk", []step{rq("*1\r\n:1\r\n", false), rs("-ERR Protocol error\r\n", false)}},
		{"bulk without CRLF", []step{rq("*1\r\n$4\r\nPINGX\r\n", false)}},
		{"bad bulk length", []step{rq("*1\r\n$x\r\n", false)}},
		{"inline with quotes", []step{rq("SET k \"a b\"\r\n", false), rs("+OK\r\n", false)}},
		{"reply bulk without CRLF", []step{rq(cmd("GET", "k"), false), rs("$1\r\nvv\r\n", false)}},
		{"unknown reply type", []step{rq(cmd("GET", "k"), false), rs("?1\r\n", false)}},
		{"streamed string", []step{rq(cmd("GET", "k"), false), rs("$?\r\n;1\r\nv\r\n;0\r\n", false)}},
		{"reply line over the bound", []step{rq(cmd("GET", "k"), false), rs("+"+big+"\r\n", false)}},
		{"nesting over the bound", []step{rq(cmd("X"), false), rs(deep, false)}},
	}
}

func TestRedisTracker(t *testing.T) {
	for _, c := range redisCases() {
		t.Run(c.name, func(t *testing.T) { runStream(t, Redis, c) })
	}
}

func TestRedisCheckReset(t *testing.T) {
	cases := []struct {
		reply   string
		done    bool
		err     bool
		noReset bool
	}{
		{"", false, false, false},
		{"+RES", false, false, false},
		{"+RESET\r", false, false, false},
		{"+RESET\r\n", true, false, false},
		{"-ERR unknown comm", false, false, false},
		{"-ERR unknown command 'RESET', with args beginning with: \r\n", true, true, true},
		{"-NOPERM this user has no permissions to run the 'reset' command\r\n", true, true, true},
		{"-LOADING Redis is loading the dataset in memory\r\n", true, true, false},
		{"+OK\r\n", true, true, false},
		{"+OK", false, true, false},
		{"+RESET\r\n+PONG\r\n", true, true, false},
		{"+" + strings.Repeat("R", maxLine), false, true, false},
	}
	for _, c := range cases {
		t.Run(abbrev(c.reply), func(t *testing.T) {
			done, err := Redis.CheckReset([]byte(c.reply))
			// With an error, done does not matter: the connection is never reused.
			if (!c.err && done != c.done) || (err != nil) != c.err || errors.Is(err, ErrNoReset) != c.noReset {
				t.Fatalf("CheckReset(%q) = %v, %v; want done %v, error %v, ErrNoReset %v", abbrev(c.reply), done, abbrev(fmt.Sprint(err)), c.done, c.err, c.noReset)
			}
		})
	}
	if got := string(Redis.ResetRequest()); got != cmd("RESET") {
		t.Fatalf("ResetRequest() = %q; want %q", got, cmd("RESET"))
	}
}

func TestLookup(t *testing.T) {
	for _, name := range Names() {
		p, err := Lookup(name)
		if err != nil || p.Name() != name {
			t.Fatalf("Lookup(%q) = %v, %v; want the protocol of that name", name, p, err)
		}
	}
	if got := strings.Join(Names(), ","); got != "http,redis" {
		t.Fatalf("Names() = %s; want http,redis", got)
	}
	for _, bad := range []string{"", "foo", "HTTP", "redis "} {
		_, err := Lookup(bad)
		if err == nil || !strings.Contains(err.Error(), "choose http or redis") || !strings.Contains(err.Error(), `"`+bad+`"`) {
			t.Fatalf("Lookup(%q) error = %v; want one naming it and the choices", bad, err)
		}
	}
}
