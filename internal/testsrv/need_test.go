package testsrv

import (
	"fmt"
	"runtime"
	"strings"
	"testing"
)

// fatalTB records a Fatalf and ends the goroutine, as testing.T does.
type fatalTB struct {
	testing.TB
	msg string
}

func (f *fatalTB) Helper() {}

func (f *fatalTB) Fatalf(format string, args ...any) {
	f.msg = fmt.Sprintf(format, args...)
	runtime.Goexit()
}

// A missing program fails the test naming the Debian package to install;
// a present one is found, in /usr/sbin too.
func TestNeed(t *testing.T) {
	for _, tt := range []struct {
		bin, pkg string
		want     string // in the failure; "" = found
	}{
		{"warmport-no-such-program", "warmport-no-such-package", "install the Debian package warmport-no-such-package"},
		{"sh", "dash", ""},
	} {
		t.Run(tt.bin, func(t *testing.T) {
			f := &fatalTB{TB: t}
			var got string
			done := make(chan struct{})
			go func() {
				defer close(done)
				got = Need(f, tt.bin, tt.pkg)
			}()
			<-done
			if tt.want == "" && (f.msg != "" || got == "") {
				t.Errorf("Need(%q): got %q, failure %q; want its path", tt.bin, got, f.msg)
			}
			if tt.want != "" && !strings.Contains(f.msg, tt.want) {
				t.Errorf("Need(%q) failed with %q; want it to say %q", tt.bin, f.msg, tt.want)
			}
		})
	}
}
