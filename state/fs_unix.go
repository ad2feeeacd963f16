//go:build unix

package state

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// dirFD is a directory of the state directory, held open: every file in it
// is reached relative to fd, with no symbolic link followed.
type dirFD struct {
	fd   int
	path string // for messages only
}

func openRoot(path string, create bool) (*dirFD, error) {
	if create {
		// The parents are the user's own path (~/.local/state, /tmp):
		// links there are theirs to make.
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			return nil, err
		}
	}
	return openDirAt(unix.AT_FDCWD, path, path, create)
}

func (d *dirFD) openSub(name, path string, create bool) (*dirFD, error) {
	return openDirAt(d.fd, name, path, create)
}

// openDirAt opens the directory name under at without following a link in
// its last component (at's descriptor pins the rest), and refuses it unless
// it is ours and writable by us alone.
func openDirAt(at int, name, path string, create bool) (*dirFD, error) {
	if create {
		if err := unix.Mkdirat(at, name, 0o700); err != nil && err != unix.EEXIST {
			return nil, &fs.PathError{Op: "mkdir", Path: path, Err: err}
		}
	}
	fd, err := retry(func() (int, error) {
		return unix.Openat(at, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	})
	if err != nil {
		var st unix.Stat_t
		if (err == unix.ELOOP || err == unix.ENOTDIR) && unix.Fstatat(at, name, &st, unix.AT_SYMLINK_NOFOLLOW) == nil &&
			st.Mode&unix.S_IFMT == unix.S_IFLNK {
			return nil, unsafeLink(path)
		}
		return nil, &fs.PathError{Op: "open", Path: path, Err: err}
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		unix.Close(fd)
		return nil, &fs.PathError{Op: "stat", Path: path, Err: err}
	}
	euid := os.Geteuid()
	switch {
	case int(st.Uid) != euid:
		err = unsafeOwner(path, int(st.Uid), euid)
	case uint32(st.Mode)&0o022 != 0:
		err = unsafeMode(path, uint32(st.Mode))
	}
	if err != nil {
		unix.Close(fd)
		return nil, err
	}
	return &dirFD{fd: fd, path: path}, nil
}

func (d *dirFD) close() error { return unix.Close(d.fd) }

func (d *dirFD) pathErr(op, name string, err error) error {
	return &fs.PathError{Op: op, Path: filepath.Join(d.path, name), Err: err}
}

// names lists the directory's entries, through a descriptor of its own so
// that each listing starts at the beginning.
func (d *dirFD) names() ([]string, error) {
	fd, err := retry(func() (int, error) {
		return unix.Openat(d.fd, ".", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	})
	if err != nil {
		return nil, d.pathErr("open", ".", err)
	}
	f := os.NewFile(uintptr(fd), d.path)
	defer f.Close()
	return f.Readdirnames(-1)
}

// readFile reads the regular file name, at most MaxFileSize bytes of it.
// It opens non-blocking, so a FIFO or a device cannot stall it, and does
// not follow a link: those, and anything but a regular file, are
// errNotRegular; a larger file is errTooBig, and is not read.
func (d *dirFD) readFile(name string) ([]byte, error) {
	fd, err := retry(func() (int, error) {
		return unix.Openat(d.fd, name, unix.O_RDONLY|unix.O_NONBLOCK|unix.O_NOFOLLOW|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	})
	switch {
	case err == unix.ELOOP:
		return nil, d.pathErr("open", name, errNotRegular)
	case err != nil:
		return nil, d.pathErr("open", name, err)
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return nil, d.pathErr("stat", name, err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		return nil, d.pathErr("read", name, errNotRegular)
	}
	if st.Size > MaxFileSize {
		return nil, d.pathErr("read", name, errTooBig)
	}
	// The file may grow while it is read: read one byte past the bound to tell.
	buf := make([]byte, 0, st.Size+1)
	for {
		if len(buf) == cap(buf) {
			if len(buf) > MaxFileSize {
				return nil, d.pathErr("read", name, errTooBig)
			}
			buf = append(buf, 0)[:len(buf)]
		}
		n, err := retry(func() (int, error) { return unix.Read(fd, buf[len(buf):cap(buf)]) })
		if err != nil {
			return nil, d.pathErr("read", name, err)
		}
		if n == 0 {
			return buf, nil
		}
		buf = buf[:len(buf)+n]
	}
}

// writeTemp writes data to a new temporary file (mode 0600) and returns its
// name.
func (d *dirFD) writeTemp(data []byte, sync bool) (string, error) {
	var name string
	var fd int
	for {
		name = newTempName()
		var err error
		fd, err = retry(func() (int, error) {
			return unix.Openat(d.fd, name, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
		})
		if err == unix.EEXIST {
			continue
		}
		if err != nil {
			return "", d.pathErr("create", name, err)
		}
		break
	}
	f := os.NewFile(uintptr(fd), filepath.Join(d.path, name))
	if err := writeClose(f, data, sync); err != nil {
		unix.Unlinkat(d.fd, name, 0)
		return "", err
	}
	return name, nil
}

// rename replaces to with from.
func (d *dirFD) rename(from, to string) error {
	if err := unix.Renameat(d.fd, from, d.fd, to); err != nil {
		return d.pathErr("rename", to, err)
	}
	return nil
}

// link gives from the name to as well; it fails with fs.ErrExist rather
// than replace a file, and with errors.ErrUnsupported where the file system
// has no hard links.
func (d *dirFD) link(from, to string) error {
	err := unix.Linkat(d.fd, from, d.fd, to, 0)
	switch err {
	case nil:
		return nil
	case unix.EPERM, unix.EOPNOTSUPP, unix.EXDEV, unix.EMLINK:
		err = errors.ErrUnsupported
	}
	return d.pathErr("link", to, err)
}

// remove removes name if it is a regular file older than age (0: any).
func (d *dirFD) remove(name string, age time.Duration) {
	var st unix.Stat_t
	if unix.Fstatat(d.fd, name, &st, unix.AT_SYMLINK_NOFOLLOW) != nil || st.Mode&unix.S_IFMT != unix.S_IFREG {
		return
	}
	if age > 0 && time.Since(time.Unix(st.Mtim.Unix())) <= age {
		return
	}
	unix.Unlinkat(d.fd, name, 0)
}

// isRegular reports whether name is a regular file.
func (d *dirFD) isRegular(name string) bool {
	var st unix.Stat_t
	return unix.Fstatat(d.fd, name, &st, unix.AT_SYMLINK_NOFOLLOW) == nil && st.Mode&unix.S_IFMT == unix.S_IFREG
}

func retry(f func() (int, error)) (int, error) {
	for {
		n, err := f()
		if err != unix.EINTR {
			return n, err
		}
	}
}

// processExists is kill(pid, 0): no error, or EPERM (someone else's), means
// a process has that pid.
func processExists(pid int) bool {
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}
