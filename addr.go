package main

import (
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"

	"github.com/warmport/warmport/forward"
)

// defaultHost is where a bare PORT or :PORT binds or points: loopback, never
// all interfaces, so an ad hoc forwarder cannot expose a database to the LAN
// by accident.
const defaultHost = "127.0.0.1"

// maxUnixPath is the longest path a Unix socket address holds: sun_path is
// 108 bytes, the last one its NUL.
const maxUnixPath = 107

// parseLocal parses the LOCAL argument: PORT, :PORT, HOST:PORT,
// [IPv6]:PORT or unix:PATH. A missing host means defaultHost; port 0 lets
// the OS pick. The result is in net.JoinHostPort form (or unix:PATH) and
// parses back to itself.
func parseLocal(s string) (string, error) {
	addr, err := parseAddr(s, true)
	if err != nil {
		return "", fmt.Errorf("bad LOCAL %q: %v; use PORT, :PORT, HOST:PORT, [IPv6]:PORT or unix:PATH", s, err)
	}
	return addr, nil
}

// parseRemote parses the REMOTE argument: HOST:PORT (a name, IPv4 or
// [IPv6]), a bare PORT meaning defaultHost:PORT, or unix:PATH. Port 0 is
// refused. The result is in net.JoinHostPort form (or unix:PATH) and parses
// back to itself.
func parseRemote(s string) (string, error) {
	addr, err := parseAddr(s, false)
	if err != nil {
		return "", fmt.Errorf("bad REMOTE %q: %v; use HOST:PORT, [IPv6]:PORT, PORT or unix:PATH", s, err)
	}
	return addr, nil
}

func parseAddr(s string, allowZero bool) (string, error) {
	if s == "" {
		return "", fmt.Errorf("empty address")
	}
	if path, ok := strings.CutPrefix(s, "unix:"); ok {
		return s, checkUnixPath(path)
	}
	host, port := "", s
	if strings.ContainsAny(s, ":[]") {
		var err error
		host, port, err = net.SplitHostPort(s)
		if err != nil {
			if strings.Count(s, ":") > 1 && !strings.HasPrefix(s, "[") {
				return "", fmt.Errorf("an IPv6 address needs brackets, as in [::1]:8080")
			}
			return "", fmt.Errorf("want HOST:PORT")
		}
		bracketed := strings.HasPrefix(s, "[")
		if _, err := netip.ParseAddr(host); bracketed && err != nil {
			return "", fmt.Errorf("%q in brackets is not an IP address", host)
		}
		if bracketed != strings.Contains(host, ":") {
			return "", fmt.Errorf("only an IPv6 address goes in brackets")
		}
	}
	p, err := parsePort(port)
	if err != nil && host == "" && !strings.Contains(s, ":") && strings.Trim(s, "+-0123456789") != "" {
		return "", fmt.Errorf("missing port (want HOST:PORT or a bare PORT)")
	}
	if err != nil {
		return "", err
	}
	if p == 0 && !allowZero {
		return "", fmt.Errorf("port 0 is not a port you can connect to")
	}
	if host == "" {
		host = defaultHost
	} else if err := checkHost(host); err != nil {
		return "", err
	}
	return net.JoinHostPort(host, strconv.Itoa(p)), nil
}

func parsePort(s string) (int, error) {
	if s == "" {
		return 0, fmt.Errorf("missing port")
	}
	if len(s) > 5 {
		return 0, fmt.Errorf("port %q is not a number from 0 to 65535", s)
	}
	for _, r := range s {
		if r < '0' || r > '9' {
			return 0, fmt.Errorf("port %q is not a number from 0 to 65535", s)
		}
	}
	p, _ := strconv.Atoi(s)
	if p > 65535 {
		return 0, fmt.Errorf("port %q is not a number from 0 to 65535", s)
	}
	return p, nil
}

// checkHost accepts IP literals and host names made of letters, digits,
// '-', '_' and '.', so that typos such as "db,5432" or stray spaces fail
// here with a clear message rather than later as a DNS error.
func checkHost(h string) error {
	if _, err := netip.ParseAddr(h); err == nil {
		return nil
	}
	if len(h) > 253 {
		return fmt.Errorf("host name longer than 253 characters")
	}
	for _, r := range h {
		ok := r == '-' || r == '_' || r == '.' ||
			(r >= 'a' && r <= 'z') || (r >= 'A' && r <= 'Z') || (r >= '0' && r <= '9')
		if !ok {
			return fmt.Errorf("host %q has a character a host name cannot have (%q)", h, r)
		}
	}
	return nil
}

// checkUnixPath accepts a path a Unix stream socket can be bound to or
// connected at.
func checkUnixPath(path string) error {
	switch {
	case !forward.UnixSockets:
		return fmt.Errorf("Unix sockets are not supported on this platform yet")
	case path == "":
		return fmt.Errorf("missing PATH after unix:")
	case strings.HasPrefix(path, "@"):
		return fmt.Errorf("abstract sockets (@NAME) are not supported; name a file")
	case strings.ContainsRune(path, 0):
		return fmt.Errorf("the path has a NUL byte")
	case len(path) > maxUnixPath:
		return fmt.Errorf("the path is %d bytes, over the %d a Unix socket address holds (sun_path); pick a shorter one", len(path), maxUnixPath)
	}
	return nil
}
