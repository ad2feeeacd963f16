package profile

import (
	"errors"
	"strings"
	"testing"
)

// FuzzParse: any input gives a profile or one *Error on one line of the
// file, never a panic, and a profile it gives holds what up relies on.
func FuzzParse(f *testing.F) {
	for _, seed := range []string{
		three,
		"[forward.db]\nlocal = 5432\nremote = \"db:5432\"\nallow = [\"10.0.0.0/8\", 8]\n",
		"[forward]\ndb = { local = \"1\", remote = \"2\", warm = -1 }\n",
		"forward.a.local = \"1\"\nforward.a.remote = \"2\"\n[forward.a.x]\n",
		"[forward.db]\n[forward.db]\n",
		"[[forward]]\nx = 1\n",
		"warm = \"4\"\npool-ttl = 30\njson = true\n[forward.\"\"]\n",
		"a = [[[[[[1]]]]]]\n[forward.b]\nlocal = 1979-05-27T07:32:00Z\n",
	} {
		f.Add([]byte(seed))
	}
	flags := testFlags()
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := Parse(file, data, flags, testProcessWide)
		if err != nil {
			var pe *Error
			if !errors.As(err, &pe) {
				t.Fatalf("got %T %v; want *Error", err, err)
			}
			if lines := strings.Count(string(data), "\n") + 1; pe.Line < 0 || pe.Line > lines {
				t.Fatalf("line %d of a %d-line file: %v", pe.Line, lines, err)
			}
			if strings.ContainsAny(pe.Msg, "\n\r") {
				t.Fatalf("error on more than one line: %q", err)
			}
			return
		}
		if len(p.Forwards) == 0 {
			t.Fatal("a profile with no forward")
		}
		seen := map[string]bool{}
		for _, fw := range p.Forwards {
			if checkName(fw.Name) != "" || seen[EnvName(fw.Name)] {
				t.Fatalf("forward name %q passed", fw.Name)
			}
			seen[EnvName(fw.Name)] = true
			if fw.Local == "" || fw.Remote == "" || fw.Flags == nil || fw.Line < 1 {
				t.Fatalf("forward %q: local %q remote %q line %d", fw.Name, fw.Local, fw.Remote, fw.Line)
			}
		}
	})
}
