package main

import (
	"slices"
	"testing"
)

// TestWithBefore: each warmport row gets its "(before)" twin right after
// it, running the other binary; other peers stay single.
func TestWithBefore(t *testing.T) {
	got := withBefore([]peer{pDirect, pWarm0, pReuse, pHAProxy})
	var names []string
	for _, p := range got {
		names = append(names, p.name)
		if want := p.name != pWarm0.name && p.name != pReuse.name && p.kind == kindWarmport; p.before != want {
			t.Errorf("%s: before %v; want %v", p.name, p.before, want)
		}
	}
	want := []string{"direct", "warmport --warm 0", "warmport --warm 0 (before)",
		"warmport --reuse http --pool-max 64", "warmport --reuse http --pool-max 64 (before)", "haproxy"}
	if !slices.Equal(names, want) {
		t.Errorf("rows: got %q; want %q", names, want)
	}
	if !slices.Equal(got[2].flags, pWarm0.flags) {
		t.Errorf("twin flags: got %q; want %q", got[2].flags, pWarm0.flags)
	}
}

func TestParseFlagsBefore(t *testing.T) {
	if _, err := parseFlags([]string{"-warmport-before", "/nonexistent/warmport"}); err == nil {
		t.Error("-warmport-before with a missing file: no error; want one")
	}
	c, err := parseFlags([]string{"-quick", "-warmport-before", "main_linux.go"})
	if err != nil || c.beforeBin == "" || c.beforeBin[0] != '/' {
		t.Errorf("got %q, %v; want an absolute path", c.beforeBin, err)
	}
}
