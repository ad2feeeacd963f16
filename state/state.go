// Package state is warmport's state directory: every running forwarder
// publishes a live snapshot there and every finished session leaves its
// summary, for `warmport stats`:
//
//	DIR/running/PID.json   one per running forwarder, rewritten when it changes (at most about 1 s behind)
//	DIR/sessions/ID.json   one per finished session; the newest HistoryMax are kept
//
// The directory is its user's own, and nobody else may turn it against
// them: a state directory owned by another user or writable by group or
// others is refused (as OpenSSH's StrictModes refuses such a ~/.ssh); no
// symbolic link is followed at any level warmport creates; and files are
// read, written and removed through directory descriptors (openat and
// friends), never by path strings a rename could redirect, and only when
// they are regular files with a name warmport could have made. Reads are
// non-blocking (a FIFO cannot stall them) and bounded by MaxFileSize.
//
// Directories are 0700 and files 0600: who connected where is nobody
// else's business. Every file is written under a temporary name (".tmp-*")
// in its own directory and then renamed or linked into place, so a reader
// sees a whole file or none, and two writers never share a name.
//
// Where the OS has no openat (Windows), the directory is reached through
// os.Root, which keeps every access inside it but may follow a link that
// points within it, and ownership and mode are not checked.
package state

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

const (
	// HistoryMax is how many finished sessions the state directory keeps.
	HistoryMax = 100
	// PublishInterval is how often a Publisher looks for changes to write.
	PublishInterval = time.Second
	// MaxFileSize bounds what is read from one state file: a session of
	// 1000 records is about 450 KiB; anything larger was not written by
	// warmport and is skipped unread.
	MaxFileSize = 1 << 20

	runningDir  = "running"
	sessionsDir = "sessions"
	tmpPrefix   = ".tmp-"
	// A temporary file older than this was left by a writer that died.
	staleTempAge = time.Hour
)

var (
	// ErrNoSession is what Dir.Session returns when no session has that ID.
	ErrNoSession = errors.New("no such session")
	// ErrUnsafe is wrapped by the error for a state directory warmport
	// refuses: owned by another user, writable by others, or a link.
	ErrUnsafe = errors.New("unsafe state directory")

	errNotRegular = errors.New("not a regular file")
	errTooBig     = fmt.Errorf("larger than %d bytes", MaxFileSize)
)

// Resolve picks the state directory's path: dir when not empty (the
// --state-dir flag), else $WARMPORT_STATE_DIR, else $XDG_STATE_HOME/warmport,
// else ~/.local/state/warmport. A relative XDG_STATE_HOME is ignored, as the
// XDG Base Directory spec says. The result is absolute when it can be, so
// messages say exactly where warmport looked. Nothing is created.
func Resolve(dir string) (string, error) {
	if dir == "" {
		dir = os.Getenv("WARMPORT_STATE_DIR")
	}
	if dir == "" {
		if x := os.Getenv("XDG_STATE_HOME"); filepath.IsAbs(x) {
			dir = filepath.Join(x, "warmport")
		}
	}
	if dir == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			return "", fmt.Errorf("find the state directory: %w; set --state-dir or WARMPORT_STATE_DIR", err)
		}
		dir = filepath.Join(home, ".local", "state", "warmport")
	}
	if abs, err := filepath.Abs(dir); err == nil {
		dir = abs
	}
	return dir, nil
}

// Dir is an open state directory. Its descriptor pins the directory that
// was checked: renaming another one into its place later changes nothing.
type Dir struct {
	path string
	root *dirFD
}

// Open opens the existing state directory at path, checking that it is
// safe to use. A missing directory is an error that wraps fs.ErrNotExist.
func Open(path string) (*Dir, error) { return open(path, false) }

// Create is Open, creating the directory (mode 0700, parents too) first
// when it is missing.
func Create(path string) (*Dir, error) { return open(path, true) }

func open(path string, create bool) (*Dir, error) {
	path = filepath.Clean(path)
	root, err := openRoot(path, create)
	if err != nil {
		return nil, err
	}
	return &Dir{path: path, root: root}, nil
}

// Close releases the directory's descriptor.
func (d *Dir) Close() error { return d.root.close() }

// Path is where the directory is.
func (d *Dir) Path() string { return d.path }

// RunningPath is where live snapshots are; SessionsPath where finished
// sessions are. Both are for messages: nothing is opened by them.
func (d *Dir) RunningPath() string  { return filepath.Join(d.path, runningDir) }
func (d *Dir) SessionsPath() string { return filepath.Join(d.path, sessionsDir) }

// sub opens the subdirectory name, creating it when asked. Without create,
// a missing one is (nil, nil).
func (d *Dir) sub(name string, create bool) (*dirFD, error) {
	s, err := d.root.openSub(name, filepath.Join(d.path, name), create)
	if !create && errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	return s, err
}

// unsafeOwner and unsafeMode are the refusals, each one line that names
// the fix.
func unsafeOwner(path string, uid, euid int) error {
	return fmt.Errorf("%w: %s is owned by uid %d, not by you (uid %d): point --state-dir or WARMPORT_STATE_DIR at a directory of your own",
		ErrUnsafe, path, uid, euid)
}

func unsafeMode(path string, mode uint32) error {
	return fmt.Errorf("%w: %s is writable by group or others (mode %04o): run chmod 700 %s", ErrUnsafe, path, mode&0o7777, path)
}

func unsafeLink(path string) error {
	return fmt.Errorf("%w: %s is a symbolic link, and warmport follows none in its state directory: remove it, or point --state-dir at the real directory",
		ErrUnsafe, path)
}

// The names warmport makes: PID.json in running/, YYYYMMDD-HHMMSS-xxxxxx.json
// in sessions/, and .tmp- and 16 hex digits for files being written.

// snapshotPID is the pid a snapshot's file name gives, if it is one.
func snapshotPID(name string) (int, bool) {
	digits, ok := strings.CutSuffix(name, ".json")
	if !ok || len(digits) == 0 || len(digits) > 10 || digits[0] == '0' || !all(digits, isDigit) {
		return 0, false
	}
	pid, err := strconv.Atoi(digits)
	return pid, err == nil && pid > 0
}

// isSessionName reports whether name is a session file's name.
func isSessionName(name string) bool {
	id, ok := strings.CutSuffix(name, ".json")
	return ok && isSessionID(id)
}

func isSessionID(id string) bool {
	return len(id) == 22 && id[8] == '-' && id[15] == '-' &&
		all(id[:8], isDigit) && all(id[9:15], isDigit) && all(id[16:], isHex)
}

func isTempName(name string) bool {
	rest, ok := strings.CutPrefix(name, tmpPrefix)
	return ok && len(rest) == 16 && all(rest, isHex)
}

func all(s string, ok func(byte) bool) bool {
	for i := 0; i < len(s); i++ {
		if !ok(s[i]) {
			return false
		}
	}
	return true
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }
func isHex(c byte) bool   { return isDigit(c) || 'a' <= c && c <= 'f' }

// newTempName is a temporary file's name: 64 random bits.
func newTempName() string {
	var b [8]byte
	rand.Read(b[:])
	return tmpPrefix + hex.EncodeToString(b[:])
}

// writeClose writes data to f, syncs it when asked, and closes it.
func writeClose(f *os.File, data []byte, sync bool) error {
	_, err := f.Write(data)
	if err == nil && sync {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}
