package allowlist

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"
)

func TestParseAndAllows(t *testing.T) {
	tests := []struct {
		name   string
		values []string
		allow  []string
		deny   []string
	}{
		{"one CIDR", []string{"10.0.0.0/8"}, []string{"10.1.2.3", "10.255.255.255"}, []string{"11.0.0.1", "9.255.255.255", "::1"}},
		{"bare IPv4 is /32", []string{"192.168.1.5"}, []string{"192.168.1.5"}, []string{"192.168.1.4", "192.168.1.6"}},
		{"bare IPv6 is /128", []string{"2001:db8::1"}, []string{"2001:db8::1"}, []string{"2001:db8::2"}},
		{"comma list and repeated flag", []string{"127.0.0.1, 10.0.0.0/8", "2001:db8::/32"},
			[]string{"127.0.0.1", "10.9.9.9", "2001:db8:ffff::1"}, []string{"127.0.0.2", "2001:db9::1"}},
		{"mapped client matches IPv4 rule", []string{"10.0.0.0/8"}, []string{"::ffff:10.1.1.1"}, []string{"::ffff:11.1.1.1"}},
		{"mapped rule means its IPv4 prefix", []string{"::ffff:10.0.0.0/104"}, []string{"10.3.3.3", "::ffff:10.3.3.3"}, []string{"11.0.0.0"}},
		{"host bits are masked", []string{"10.1.2.3/8"}, []string{"10.200.0.1"}, []string{"11.0.0.0"}},
		{"zone ignored", []string{"fe80::/10"}, []string{"fe80::1%eth0"}, []string{"fe00::1%eth0"}},
		{"IPv4 rule does not admit IPv6", []string{"0.0.0.0/0"}, []string{"1.2.3.4"}, []string{"2001:db8::1"}},
		{"IPv6 ::/0 does not admit IPv4", []string{"::/0"}, []string{"2001:db8::1"}, []string{"1.2.3.4", "::ffff:1.2.3.4"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l, err := Parse(tt.values)
			if err != nil {
				t.Fatalf("Parse(%q): %v", tt.values, err)
			}
			for _, s := range tt.allow {
				if got := l.Allows(netip.MustParseAddr(s)); !got {
					t.Errorf("Allows(%s) = %v; want true (rules %s)", s, got, l)
				}
			}
			for _, s := range tt.deny {
				if got := l.Allows(netip.MustParseAddr(s)); got {
					t.Errorf("Allows(%s) = %v; want false (rules %s)", s, got, l)
				}
			}
		})
	}
}

func TestNoValuesAllowsEveryone(t *testing.T) {
	l, err := Parse(nil)
	if err != nil || l != nil {
		t.Fatalf("Parse(nil) = %v, %v; want nil, nil", l, err)
	}
	if !l.Allows(netip.MustParseAddr("203.0.113.9")) {
		t.Errorf("nil list denied a client; want everyone allowed")
	}
}

func TestParseErrors(t *testing.T) {
	for _, bad := range []string{"10.0.0.0/33", "10.0.0", "db.internal", "", "10.0.0.0/8,", "fe80::1%eth0", "1.2.3.4/-1", "::/129"} {
		t.Run(bad, func(t *testing.T) {
			_, err := Parse([]string{"127.0.0.1", bad})
			if err == nil {
				t.Fatalf("Parse(%q) = nil error; want one", bad)
			}
			msg := err.Error()
			item := strings.TrimSpace(bad)
			if strings.HasSuffix(bad, ",") {
				item = ""
			}
			for _, want := range []string{fmt.Sprintf("%q", item), "e.g. --allow 10.0.0.0/8"} {
				if !strings.Contains(msg, want) {
					t.Errorf("error %q; want it to contain %s", msg, want)
				}
			}
			if strings.Contains(msg, "\n") {
				t.Errorf("error %q spans lines; want one line", msg)
			}
		})
	}
}

func TestString(t *testing.T) {
	l, err := Parse([]string{"10.1.0.0/8,192.168.1.5", "::1"})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := l.String(), "10.0.0.0/8,192.168.1.5/32,::1/128"; got != want {
		t.Errorf("String() = %q; want %q", got, want)
	}
}
