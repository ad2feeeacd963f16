package sshvia

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"sync"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"
)

// keyring holds what authentication needs across redials: keys decrypted
// once (so a healed connection never asks for a passphrase again).
type keyring struct {
	cfg *Config
	mu  sync.Mutex
	dec map[string]ssh.Signer // decrypted keys by file

	// asking is held while a passphrase is asked: the tunnel's keepers
	// connect at the same time, and one question is enough for all.
	asking sync.Mutex
}

// attempt is one authentication's signers and the notes that explain a
// failure: what was skipped and why, and which keys the server did not take.
type attempt struct {
	mu      sync.Mutex
	notes   []string
	signers []*trackedSigner
	closers []io.Closer
	// hold pauses the handshake's timeout while a passphrase is asked.
	hold func() (release func())
}

func (a *attempt) note(format string, args ...any) {
	a.mu.Lock()
	a.notes = append(a.notes, fmt.Sprintf(format, args...))
	a.mu.Unlock()
}

func (a *attempt) close() {
	for _, c := range a.closers {
		c.Close()
	}
}

// explain is the one-line reason authentication failed.
func (a *attempt) explain(usr string, err error) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	notes := append([]string(nil), a.notes...)
	for _, s := range a.signers {
		if !s.signed {
			notes = append(notes, s.name+" not accepted")
		}
	}
	if len(notes) == 0 {
		notes = append(notes, "no key to offer")
	}
	msg := err.Error()
	if i := strings.Index(msg, "attempted methods"); i >= 0 {
		msg = msg[i:]
	}
	return fmt.Errorf("authentication as %q failed: %s (%s)", usr, strings.Join(notes, "; "), msg)
}

// methods builds the auth methods for h as OpenSSH does without a
// terminal for passwords: the agent's keys, then the key files
// (--identity, else the config's IdentityFile or the default keys).
func (kr *keyring) methods(h *host) ([]ssh.AuthMethod, *attempt) {
	a := &attempt{}
	kr.agentSigners(h, a)
	files := kr.cfg.Identities
	explicit := len(files) > 0
	if !explicit {
		files = h.identities
	}
	for _, f := range files {
		kr.fileSigner(f, explicit, a)
	}
	signers := make([]ssh.Signer, len(a.signers))
	for i, s := range a.signers {
		signers[i] = s
	}
	return []ssh.AuthMethod{ssh.PublicKeys(signers...)}, a
}

func (kr *keyring) agentSigners(h *host, a *attempt) {
	sock := kr.cfg.AgentSock
	if sock == "" {
		sock = h.agent
		if sock == "" || sock == "SSH_AUTH_SOCK" {
			sock = os.Getenv("SSH_AUTH_SOCK")
		}
	}
	switch sock {
	case "":
		a.note("no agent (SSH_AUTH_SOCK unset)")
		return
	case "none":
		a.note("no agent (IdentityAgent none)")
		return
	}
	c, err := net.Dial("unix", sock)
	if err != nil {
		a.note("agent: %v", err)
		return
	}
	a.closers = append(a.closers, c)
	ss, err := agent.NewClient(c).Signers()
	if err != nil {
		a.note("agent: %v", err)
		return
	}
	if len(ss) == 0 {
		a.note("agent has no keys")
	}
	for _, s := range ss {
		a.signers = append(a.signers, track(s, "agent key "+ssh.FingerprintSHA256(s.PublicKey())))
	}
}

// fileSigner adds the key in f. Missing default keys are skipped silently,
// as ssh does; an encrypted key is offered by its public half and asks for
// its passphrase only when the server would take it.
func (kr *keyring) fileSigner(f string, explicit bool, a *attempt) {
	kr.mu.Lock()
	s, ok := kr.dec[f]
	kr.mu.Unlock()
	if ok {
		a.signers = append(a.signers, track(s, f))
		return
	}
	pem, err := os.ReadFile(f)
	if err != nil {
		if explicit || !errors.Is(err, os.ErrNotExist) {
			a.note("%s: %v", f, unwrapPath(err))
		}
		return
	}
	s, err = ssh.ParsePrivateKey(pem)
	var pm *ssh.PassphraseMissingError
	switch {
	case err == nil:
		a.signers = append(a.signers, track(s, f))
	case errors.As(err, &pm):
		pub := pm.PublicKey
		if pub == nil {
			pub = readPub(f + ".pub")
		}
		switch {
		case kr.cfg.Prompt == nil:
			a.note("%s is encrypted and there is no terminal to ask its passphrase (add it to ssh-agent)", f)
		case pub == nil:
			a.note("%s is encrypted and has no %s.pub to offer first", f, f)
		default:
			a.signers = append(a.signers, track(&lockedKey{kr: kr, at: a, file: f, pem: pem, pub: pub}, f))
		}
	default:
		a.note("%s: %v", f, err)
	}
}

func unwrapPath(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

func readPub(f string) ssh.PublicKey {
	b, err := os.ReadFile(f)
	if err != nil {
		return nil
	}
	k, _, _, _, err := ssh.ParseAuthorizedKey(b)
	if err != nil {
		return nil
	}
	return k
}

// lockedKey is an encrypted key: its public half is offered, and the
// passphrase is asked when the server accepted it and wants a signature.
type lockedKey struct {
	kr   *keyring
	at   *attempt
	file string
	pem  []byte
	pub  ssh.PublicKey
}

func (k *lockedKey) PublicKey() ssh.PublicKey { return k.pub }

func (k *lockedKey) Sign(r io.Reader, data []byte) (*ssh.Signature, error) {
	s, err := k.unlock()
	if err != nil {
		return nil, err
	}
	return s.Sign(r, data)
}

func (k *lockedKey) SignWithAlgorithm(r io.Reader, data []byte, algo string) (*ssh.Signature, error) {
	s, err := k.unlock()
	if err != nil {
		return nil, err
	}
	as, ok := s.(ssh.AlgorithmSigner)
	if !ok {
		return s.Sign(r, data)
	}
	return as.SignWithAlgorithm(r, data, algo)
}

func (k *lockedKey) unlock() (ssh.Signer, error) {
	k.kr.asking.Lock()
	defer k.kr.asking.Unlock()
	k.kr.mu.Lock()
	s, ok := k.kr.dec[k.file]
	k.kr.mu.Unlock()
	if ok {
		return s, nil
	}
	if k.at.hold != nil {
		defer k.at.hold()()
	}
	pass, err := k.kr.cfg.Prompt(fmt.Sprintf("Enter passphrase for key '%s': ", k.file))
	if err != nil {
		return nil, fmt.Errorf("%s: passphrase: %v", k.file, err)
	}
	s, err = ssh.ParsePrivateKeyWithPassphrase(k.pem, pass)
	if err != nil {
		return nil, fmt.Errorf("%s: %v", k.file, err)
	}
	k.kr.mu.Lock()
	if k.kr.dec == nil {
		k.kr.dec = map[string]ssh.Signer{}
	}
	k.kr.dec[k.file] = s
	k.kr.mu.Unlock()
	return s, nil
}

// trackedSigner remembers whether the server took its key (it signs only
// then), so a failure can say which keys were not accepted. It keeps the
// RSA SHA-2 algorithms a bare ssh.Signer wrapper would hide.
type trackedSigner struct {
	ssh.Signer
	name   string
	mu     sync.Mutex
	signed bool
}

func track(s ssh.Signer, name string) *trackedSigner {
	return &trackedSigner{Signer: s, name: name}
}

func (t *trackedSigner) mark() {
	t.mu.Lock()
	t.signed = true
	t.mu.Unlock()
}

func (t *trackedSigner) Sign(r io.Reader, data []byte) (*ssh.Signature, error) {
	t.mark()
	return t.Signer.Sign(r, data)
}

func (t *trackedSigner) SignWithAlgorithm(r io.Reader, data []byte, algo string) (*ssh.Signature, error) {
	t.mark()
	if as, ok := t.Signer.(ssh.AlgorithmSigner); ok {
		return as.SignWithAlgorithm(r, data, algo)
	}
	return t.Signer.Sign(r, data)
}

// Algorithms lists what the key can sign with, as x/crypto would pick for
// an ssh.AlgorithmSigner of this key type.
func (t *trackedSigner) Algorithms() []string {
	if ms, ok := t.Signer.(ssh.MultiAlgorithmSigner); ok {
		return ms.Algorithms()
	}
	if t.PublicKey().Type() == ssh.KeyAlgoRSA {
		if _, ok := t.Signer.(ssh.AlgorithmSigner); ok {
			return []string{ssh.KeyAlgoRSASHA512, ssh.KeyAlgoRSASHA256, ssh.KeyAlgoRSA}
		}
	}
	return []string{t.PublicKey().Type()}
}
