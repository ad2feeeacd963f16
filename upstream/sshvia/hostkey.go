package sshvia

import (
	"errors"
	"fmt"
	"net"
	"os"
	"strings"

	"github.com/skeema/knownhosts"
	"golang.org/x/crypto/ssh"
	xknownhosts "golang.org/x/crypto/ssh/knownhosts"
)

// hostKeys checks host keys strictly against known_hosts files. skeema's
// database also tells the handshake which key types it knows for a host, so
// a host with an ed25519 key on file is not asked for its RSA key and then
// refused (golang/go#49631).
type hostKeys struct {
	files []string // existing files, in order
	first string   // where a new key belongs
	db    *knownhosts.HostKeyDB
}

func newHostKeys(files []string) (*hostKeys, error) {
	hk := &hostKeys{first: files[0]}
	for _, f := range files {
		if _, err := os.Stat(f); err == nil {
			hk.files = append(hk.files, f)
		} else if !errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("known hosts: %v", err)
		}
	}
	if len(hk.files) == 0 {
		return hk, nil
	}
	db, err := knownhosts.NewDB(hk.files...)
	if err != nil {
		return nil, fmt.Errorf("known hosts: %v", err)
	}
	hk.db = db
	return hk, nil
}

// algorithms are the host key algorithms to ask addr for: those of its known
// keys, or nil (x/crypto's defaults) for an unknown host.
func (hk *hostKeys) algorithms(addr string) []string {
	if hk.db == nil {
		return nil
	}
	return hk.db.HostKeyAlgorithms(addr)
}

// callback verifies the key of the server dialed as addr.
func (hk *hostKeys) callback(addr string) ssh.HostKeyCallback {
	return func(_ string, remote net.Addr, key ssh.PublicKey) error {
		if hk.db == nil {
			return hk.unknown(addr, key)
		}
		err := hk.db.HostKeyCallback()(addr, remote, key)
		var ke *xknownhosts.KeyError
		if !errors.As(err, &ke) {
			return err
		}
		if len(ke.Want) == 0 {
			return hk.unknown(addr, key)
		}
		w := ke.Want[0]
		return hostKeyErrorf("host key of %s has CHANGED (now %s %s; %s:%d has %s %s): someone may be in the middle; if the change is expected, remove the old key with: ssh-keygen -R '%s' -f %s",
			knownhosts.Normalize(addr), key.Type(), ssh.FingerprintSHA256(key),
			w.Filename, w.Line, w.Key.Type(), ssh.FingerprintSHA256(w.Key),
			knownhosts.Normalize(addr), w.Filename)
	}
}

func (hk *hostKeys) unknown(addr string, key ssh.PublicKey) error {
	line := knownhosts.Line([]string{knownhosts.Normalize(addr)}, key)
	return hostKeyErrorf("host key of %s is not known (%s %s); if that is the server's key, accept it with: echo '%s' >> %s",
		knownhosts.Normalize(addr), key.Type(), ssh.FingerprintSHA256(key),
		strings.ReplaceAll(line, "'", ""), hk.first)
}

// hostKeyErr is a refused host key, told apart from other handshake errors
// so Open can print it alone.
type hostKeyErr struct{ msg string }

func (e *hostKeyErr) Error() string { return e.msg }

func hostKeyErrorf(format string, a ...any) error {
	return &hostKeyErr{msg: fmt.Sprintf(format, a...)}
}
