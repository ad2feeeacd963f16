//go:build !unix

package state

import (
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"time"
)

// dirFD is a directory of the state directory, held open as an os.Root:
// nothing reached through it leaves it. Unlike the openat path on Unix, a
// link pointing inside the directory may be followed, and ownership and
// mode are not checked (Windows has neither uid nor mode bits).
type dirFD struct {
	r    *os.Root
	path string // for messages only
}

func openRoot(path string, create bool) (*dirFD, error) {
	if create {
		if err := os.MkdirAll(path, 0o700); err != nil {
			return nil, err
		}
	}
	if fi, err := os.Lstat(path); err == nil && fi.Mode()&fs.ModeSymlink != 0 {
		return nil, unsafeLink(path)
	}
	r, err := os.OpenRoot(path)
	if err != nil {
		return nil, err
	}
	return &dirFD{r: r, path: path}, nil
}

func (d *dirFD) openSub(name, path string, create bool) (*dirFD, error) {
	if create {
		if err := d.r.Mkdir(name, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
			return nil, err
		}
	}
	fi, err := d.r.Lstat(name)
	if err != nil {
		return nil, err
	}
	if fi.Mode()&fs.ModeSymlink != 0 {
		return nil, unsafeLink(path)
	}
	r, err := d.r.OpenRoot(name)
	if err != nil {
		return nil, err
	}
	return &dirFD{r: r, path: path}, nil
}

func (d *dirFD) close() error { return d.r.Close() }

func (d *dirFD) names() ([]string, error) {
	f, err := d.r.Open(".")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return f.Readdirnames(-1)
}

func (d *dirFD) readFile(name string) ([]byte, error) {
	path := filepath.Join(d.path, name)
	fi, err := d.r.Lstat(name)
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, &fs.PathError{Op: "read", Path: path, Err: errNotRegular}
	}
	if fi.Size() > MaxFileSize {
		return nil, &fs.PathError{Op: "read", Path: path, Err: errTooBig}
	}
	f, err := d.r.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxFileSize+1))
	if err == nil && len(data) > MaxFileSize {
		err = &fs.PathError{Op: "read", Path: path, Err: errTooBig}
	}
	return data, err
}

func (d *dirFD) writeTemp(data []byte, sync bool) (string, error) {
	var name string
	var f *os.File
	for {
		name = newTempName()
		var err error
		f, err = d.r.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if errors.Is(err, fs.ErrExist) {
			continue
		}
		if err != nil {
			return "", err
		}
		break
	}
	if err := writeClose(f, data, sync); err != nil {
		d.r.Remove(name)
		return "", err
	}
	return name, nil
}

func (d *dirFD) rename(from, to string) error { return d.r.Rename(from, to) }

func (d *dirFD) link(from, to string) error {
	err := d.r.Link(from, to)
	if err != nil && !errors.Is(err, fs.ErrExist) {
		err = errors.ErrUnsupported
	}
	return err
}

func (d *dirFD) remove(name string, age time.Duration) {
	fi, err := d.r.Lstat(name)
	if err != nil || !fi.Mode().IsRegular() || age > 0 && time.Since(fi.ModTime()) <= age {
		return
	}
	d.r.Remove(name)
}

func (d *dirFD) isRegular(name string) bool {
	fi, err := d.r.Lstat(name)
	return err == nil && fi.Mode().IsRegular()
}

// processExists asks the OS for a handle on pid (Windows opens the process).
func processExists(pid int) bool {
	p, err := os.FindProcess(pid)
	if err != nil {
		return false
	}
	p.Release()
	return true
}
