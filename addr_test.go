package main

import (
	"strings"
	"testing"

	"github.com/warmport/warmport/forward"
)

func TestParseLocal(t *testing.T) {
	tests := []struct {
		in, want string
		errHas   string
	}{
		{in: "8080", want: "127.0.0.1:8080"},
		{in: ":8080", want: "127.0.0.1:8080"},
		{in: "0", want: "127.0.0.1:0"},
		{in: ":0", want: "127.0.0.1:0"},
		{in: "0.0.0.0:80", want: "0.0.0.0:80"},
		{in: "localhost:5432", want: "localhost:5432"},
		{in: "[::1]:8080", want: "[::1]:8080"},
		{in: "[::]:0", want: "[::]:0"},
		{in: "[fe80::1%lo]:22", want: "[fe80::1%lo]:22"},
		{in: "65535", want: "127.0.0.1:65535"},
		{in: "", errHas: "empty"},
		{in: "65536", errHas: "0 to 65535"},
		{in: "-1", errHas: "0 to 65535"},
		{in: "abc", errHas: "missing port"},
		{in: "::1:80", errHas: "brackets"},
		{in: "[127.0.0.1]:80", errHas: "only an IPv6"},
		{in: "[db]:80", errHas: "not an IP"},
		{in: "host:", errHas: "missing port"},
		{in: "host:http", errHas: "not a number"},
		{in: "db,x:80", errHas: "cannot have"},
		{in: "a b:80", errHas: "cannot have"},
		{in: "1.2.3.4", errHas: "missing port"},
		{in: "123456", errHas: "0 to 65535"},
		{in: "unix:/run/app.sock", want: "unix:/run/app.sock"},
		{in: "unix:rel/app.sock", want: "unix:rel/app.sock"},
		{in: "unix:" + longPath(107), want: "unix:" + longPath(107)},
		{in: "unix:" + longPath(108), errHas: "over the 107"},
		{in: "unix:", errHas: "missing PATH"},
		{in: "unix:@abstract", errHas: "abstract"},
		{in: "unix:/a\x00b", errHas: "NUL"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			tt.want, tt.errHas = unixUnsupported(tt.in, tt.want, tt.errHas)
			got, err := parseLocal(tt.in)
			if tt.errHas != "" {
				if err == nil || !strings.Contains(err.Error(), tt.errHas) {
					t.Fatalf("parseLocal(%q) = %q, %v; want error containing %q", tt.in, got, err, tt.errHas)
				}
				if !strings.Contains(err.Error(), "use PORT") {
					t.Errorf("error %q does not say what to use", err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("parseLocal(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
			}
		})
	}
}

func TestParseRemote(t *testing.T) {
	tests := []struct {
		in, want string
		errHas   string
	}{
		{in: "5432", want: "127.0.0.1:5432"},
		{in: ":5432", want: "127.0.0.1:5432"},
		{in: "db:5432", want: "db:5432"},
		{in: "db.internal.example:5432", want: "db.internal.example:5432"},
		{in: "10.0.0.5:22", want: "10.0.0.5:22"},
		{in: "[2001:db8::1]:443", want: "[2001:db8::1]:443"},
		{in: "0", errHas: "port 0"},
		{in: "db:0", errHas: "port 0"},
		{in: "db", errHas: "missing port"},
		{in: "2001:db8::1:443", errHas: "brackets"},
		{in: "db:99999", errHas: "0 to 65535"},
		{in: "unix:/var/run/docker.sock", want: "unix:/var/run/docker.sock"},
		{in: "unix:" + longPath(200), errHas: "sun_path"},
		{in: "unix:", errHas: "missing PATH"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			tt.want, tt.errHas = unixUnsupported(tt.in, tt.want, tt.errHas)
			got, err := parseRemote(tt.in)
			if tt.errHas != "" {
				if err == nil || !strings.Contains(err.Error(), tt.errHas) {
					t.Fatalf("parseRemote(%q) = %q, %v; want error containing %q", tt.in, got, err, tt.errHas)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("parseRemote(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
			}
		})
	}
}

// unixUnsupported turns a unix:PATH case into the error a build without
// Unix sockets gives.
func unixUnsupported(in, want, errHas string) (string, string) {
	if strings.HasPrefix(in, "unix:") && !forward.UnixSockets {
		return "", "not supported on this platform"
	}
	return want, errHas
}

// longPath is an absolute path of n bytes.
func longPath(n int) string { return "/" + strings.Repeat("p", n-1) }

// fuzzParse checks that parse never panics and that what it accepts is a
// fixed point: parsing its own output gives the same address back.
func fuzzParse(t *testing.T, parse func(string) (string, error), s string) {
	got, err := parse(s)
	if err != nil {
		if got != "" {
			t.Fatalf("parse(%q) returned %q with error %v", s, got, err)
		}
		return
	}
	again, err := parse(got)
	if err != nil || again != got {
		t.Fatalf("parse(%q) = %q, but parse(%q) = %q, %v", s, got, got, again, err)
	}
}

func FuzzParseLocal(f *testing.F) {
	for _, s := range []string{"8080", ":0", "[::1]:80", "localhost:1", "::1:80", "[x]:1", "a:b:c", "0.0.0.0:65535", "unix:/tmp/s"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) { fuzzParse(t, parseLocal, s) })
}

func FuzzParseRemote(f *testing.F) {
	for _, s := range []string{"5432", "db:5432", "[2001:db8::1]:443", "db", ":1", "[fe80::1%eth0]:22", "unix:x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) { fuzzParse(t, parseRemote, s) })
}
