//go:build unix

package state

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/warmport/warmport/session"
)

// TestOpenRefuses: a state directory, or a directory in it, that is a link,
// belongs to someone else or is writable by others is refused with
// ErrUnsafe and a message naming it; a regular file is an error too.
func TestOpenRefuses(t *testing.T) {
	for _, c := range []struct {
		name  string
		setup func(t *testing.T, dir string) (bad string) // returns the path the error must name
		want  string
	}{
		{"root a link", func(t *testing.T, dir string) string {
			link := dir + "-link"
			mustT(t, os.Symlink(dir, link))
			return link
		}, "symbolic link"},
		{"running a link", func(t *testing.T, dir string) string {
			mustT(t, os.Symlink(t.TempDir(), filepath.Join(dir, runningDir)))
			return filepath.Join(dir, runningDir)
		}, "symbolic link"},
		{"sessions a link", func(t *testing.T, dir string) string {
			mustT(t, os.Symlink(t.TempDir(), filepath.Join(dir, sessionsDir)))
			return filepath.Join(dir, sessionsDir)
		}, "symbolic link"},
		{"mode 0777", func(t *testing.T, dir string) string {
			mustT(t, os.Chmod(dir, 0o777))
			return dir
		}, "chmod 700"},
		{"mode 0720", func(t *testing.T, dir string) string {
			mustT(t, os.Chmod(dir, 0o720))
			return dir
		}, "chmod 700"},
		{"sessions mode 0703", func(t *testing.T, dir string) string {
			p := filepath.Join(dir, sessionsDir)
			mustT(t, os.Mkdir(p, 0o700))
			mustT(t, os.Chmod(p, 0o703))
			return p
		}, "chmod 700"},
		{"owned by nobody", func(t *testing.T, dir string) string {
			if os.Geteuid() != 0 {
				t.Skip("chown to another user needs root")
			}
			mustT(t, os.Chown(dir, 65534, 65534))
			return dir
		}, "owned by uid 65534"},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "state")
			mustT(t, os.Mkdir(dir, 0o700))
			bad := c.setup(t, dir)
			open := dir
			if strings.HasSuffix(bad, "-link") {
				open = bad
			}
			var err error
			if d, oerr := Open(open); oerr != nil {
				err = oerr
			} else {
				defer d.Close()
				if _, err = d.Running(); err == nil {
					_, err = d.Recent()
				}
				if err == nil {
					_, err = d.SaveSession(&session.Summary{})
				}
			}
			if !errors.Is(err, ErrUnsafe) || !strings.Contains(err.Error(), bad) || !strings.Contains(err.Error(), c.want) {
				t.Errorf("got %v; want ErrUnsafe naming %s and saying %q", err, bad, c.want)
			}
		})
	}
	file := filepath.Join(t.TempDir(), "file")
	mustT(t, os.WriteFile(file, nil, 0o600))
	if _, err := Open(file); err == nil || errors.Is(err, ErrUnsafe) || !errors.Is(err, syscall.ENOTDIR) {
		t.Errorf("Open(a regular file): got %v; want ENOTDIR", err)
	}
}

// TestReadFileHostile: readFile never blocks on a FIFO or a device, never
// follows a link and never reads past MaxFileSize.
func TestReadFileHostile(t *testing.T) {
	d := testDir(t, t.TempDir())
	dir, err := d.sub(runningDir, true)
	mustT(t, err)
	defer dir.close()
	p := func(n string) string { return filepath.Join(dir.path, n) }
	mustT(t, syscall.Mkfifo(p("fifo"), 0o600))
	mustT(t, os.Symlink("/dev/zero", p("zero-link")))
	mustT(t, os.WriteFile(p("target"), []byte("{}"), 0o600))
	mustT(t, os.Symlink(p("target"), p("file-link")))
	for _, c := range []struct {
		name string
		size int64
		want error
	}{
		{"just right", MaxFileSize, nil},
		{"too big", MaxFileSize + 1, errTooBig},
		{"100 MB", 100 << 20, errTooBig},
	} {
		f, err := os.Create(p(c.name))
		mustT(t, err)
		mustT(t, f.Truncate(c.size))
		f.Close()
	}
	for _, c := range []struct {
		name string
		want error
	}{
		{"fifo", errNotRegular},
		{"zero-link", errNotRegular},
		{"file-link", errNotRegular},
		{"just right", nil},
		{"too big", errTooBig},
		{"100 MB", errTooBig},
		{"missing", os.ErrNotExist},
	} {
		t.Run(c.name, func(t *testing.T) {
			data, err := dir.readFile(c.name)
			if !errors.Is(err, c.want) || c.want == nil && err != nil {
				t.Errorf("readFile(%s): got %d bytes, %v; want %v", c.name, len(data), err, c.want)
			}
		})
	}
	if os.Geteuid() == 0 {
		mustT(t, syscall.Mknod(p("zero"), syscall.S_IFCHR|0o600, 1<<8|5))
		if _, err := dir.readFile("zero"); !errors.Is(err, errNotRegular) {
			t.Errorf("readFile(a /dev/zero node): got %v; want errNotRegular", err)
		}
	}
}

// TestOnlyOurNames: Running and Recent read, list and remove only files
// with names warmport makes; others stay, even dead-looking ones.
func TestOnlyOurNames(t *testing.T) {
	d := testDir(t, t.TempDir())
	mustT(t, os.Mkdir(d.RunningPath(), 0o700))
	mustT(t, os.Mkdir(d.SessionsPath(), 0o700))
	old := time.Now().Add(-2 * staleTempAge)
	dead, _ := json.Marshal(Snapshot{PID: 4000000})
	session, _ := json.Marshal(Session{SessionInfo: SessionInfo{Local: "x"}})
	files := map[string][]byte{
		filepath.Join(d.RunningPath(), "4000000.json"):                 dead, // ours, dead: removed
		filepath.Join(d.RunningPath(), "04000000.json"):                dead,
		filepath.Join(d.RunningPath(), "+4000000.json"):                dead,
		filepath.Join(d.RunningPath(), "4000000.json~"):                dead,
		filepath.Join(d.RunningPath(), ".tmp-keep"):                    nil,
		filepath.Join(d.RunningPath(), ".tmp-0123456789abcdef"):        nil, // ours, stale: removed
		filepath.Join(d.SessionsPath(), "notes.json"):                  session,
		filepath.Join(d.SessionsPath(), "20250101-000000-ABCDEF.json"): session,
		filepath.Join(d.SessionsPath(), ".tmp-fedcba9876543210"):       nil, // ours, stale: removed
	}
	for p, data := range files {
		mustT(t, os.WriteFile(p, data, 0o600))
		mustT(t, os.Chtimes(p, old, old))
	}
	if _, err := d.Running(); err != nil {
		t.Fatal(err)
	}
	recent, err := d.Recent()
	if err != nil || len(recent) != 0 {
		t.Errorf("Recent: got %+v, %v; want none (no name is a session's)", recent, err)
	}
	for p := range files {
		_, err := os.Lstat(p)
		base := filepath.Base(p)
		ours := base == "4000000.json" || isTempName(base)
		if (err == nil) == ours {
			t.Errorf("%s: still there: %v; want removed only if warmport made the name", p, err == nil)
		}
	}
}

func mustT(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
