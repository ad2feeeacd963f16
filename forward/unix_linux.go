package forward

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// UnixSockets says whether LOCAL and REMOTE may be unix:PATH in this build.
const UnixSockets = true

// listenUnix listens on a Unix stream socket at path, created mode 0600 (the
// mode is set between bind and listen, when no client can connect yet),
// replacing a stale socket file that nobody listens on. The listener removes
// the file when it is closed.
func listenUnix(path string) (*net.UnixListener, error) {
	if err := clearStale(path); err != nil {
		return nil, err
	}
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, os.NewSyscallError("socket", err)
	}
	defer unix.Close(fd) // FileListener listens on a duplicate
	if err := unix.Bind(fd, &unix.SockaddrUnix{Name: path}); err != nil {
		return nil, bindError(path, err)
	}
	if err := unix.Chmod(path, 0o600); err != nil {
		os.Remove(path)
		return nil, fmt.Errorf("make %s private (mode 0600): %v", path, err)
	}
	if err := unix.Listen(fd, unix.SOMAXCONN); err != nil {
		os.Remove(path)
		return nil, os.NewSyscallError("listen", err)
	}
	file := os.NewFile(uintptr(fd), path)
	ln, err := net.FileListener(file)
	file.Close()
	if err != nil {
		os.Remove(path)
		return nil, err
	}
	ul := ln.(*net.UnixListener)
	ul.SetUnlinkOnClose(true)
	return ul, nil
}

// clearStale removes a socket file at path that nobody listens on, as left by
// a process that died without removing it. A live one is in use; a file that
// is not a socket is not ours to remove.
func clearStale(path string) error {
	fi, err := os.Lstat(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil
	case err != nil:
		return err
	case fi.Mode().Type() != fs.ModeSocket:
		return fmt.Errorf("%s exists and is not a socket: remove it or pick another path", path)
	}
	c, err := net.Dial("unix", path)
	if err == nil {
		c.Close()
		return fmt.Errorf("%s is in use: another process listens there; stop it or pick another path", path)
	}
	if !errors.Is(err, unix.ECONNREFUSED) {
		if errors.Is(err, unix.EAGAIN) {
			return fmt.Errorf("%s is in use: another process listens there; stop it or pick another path", path)
		}
		return err
	}
	if err := os.Remove(path); err != nil {
		return fmt.Errorf("remove the stale socket %s: %v", path, err)
	}
	return nil
}

// bindError says why a socket file could not be created at path, in words a
// user can act on (not wrapping the errno: the CLI's hints for it speak of
// ports).
func bindError(path string, err error) error {
	switch {
	case errors.Is(err, unix.ENOENT):
		return fmt.Errorf("directory %s does not exist: create it or pick another path", filepath.Dir(path))
	case errors.Is(err, unix.EACCES), errors.Is(err, unix.EPERM), errors.Is(err, unix.EROFS):
		return fmt.Errorf("cannot create %s (%v): pick a directory you can write to", path, err)
	case errors.Is(err, unix.EADDRINUSE):
		return fmt.Errorf("%s appeared meanwhile: another process listens there; stop it or pick another path", path)
	}
	return fmt.Errorf("bind %s: %v", path, err)
}
