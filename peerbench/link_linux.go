package main

// The simulated slow link for the time-to-first-byte test. This kernel has no
// netem, so the delay lives in user space: two network namespaces, one TUN
// device in each, and a relay that reads every IP packet from one TUN and
// writes it to the other after holding it for oneWay (delayQueue). Both
// directions together give a real round trip of 2*oneWay.
//
// The link runs in its own helper process ("peerbench __link", started by
// startLink) so that it is torn down even when the benchmark itself is killed
// with SIGKILL: the helper gets SIGTERM from the kernel (Pdeathsig) and EOF on
// its stdin, and deletes both namespaces before exiting.

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

const (
	nsCli  = "wpb-cli"    // client side: the client and the forwarder
	nsUp   = "wpb-up"     // upstream side: the 1-byte echo server
	cliIP  = "198.18.0.1" // inside benchNet only
	upIP   = "198.18.0.2"
	oneWay = 5 * time.Millisecond
)

// nsExists reports whether a network namespace of that name exists (as
// created by ip netns add).
func nsExists(name string) bool {
	for _, dir := range []string{"/run/netns/", "/var/run/netns/"} {
		if _, err := os.Stat(dir + name); err == nil {
			return true
		}
	}
	return false
}

// run runs a short command (ip ...) and returns its output in the error.
func run(argv ...string) error {
	out, err := exec.Command(argv[0], argv[1:]...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s: %v: %s", strings.Join(argv, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// linkProc is the parent's handle on the helper process.
type linkProc struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	done  chan struct{}
}

// startLink starts the helper and waits (bounded) for it to report READY.
func startLink(exe string) (*linkProc, error) {
	for _, ns := range []string{nsCli, nsUp} {
		if nsExists(ns) {
			return nil, fmt.Errorf("network namespace %s already exists: refusing to touch it "+
				"(another benchmark running? if not, delete it with: ip netns del %s)", ns, ns)
		}
	}
	cmd := exec.Command(exe, "__link")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	l := &linkProc{cmd: cmd, stdin: stdin, done: make(chan struct{})}
	ready := make(chan bool, 1)
	goSafe(func() {
		sc := bufio.NewScanner(stdout)
		ok := false
		for sc.Scan() {
			if !ok && sc.Text() == "READY" {
				ok = true
				ready <- true
			}
		}
		if !ok {
			ready <- false
		}
		cmd.Wait()
		close(l.done)
	})
	select {
	case ok := <-ready:
		if ok {
			return l, nil
		}
		l.close()
		return nil, errors.New("link helper exited before it was ready (see its messages above)")
	case <-time.After(20 * time.Second):
		l.close()
		return nil, errors.New("link helper not ready after 20s")
	}
}

// close asks the helper to tear the link down and waits for it (bounded);
// if it does not exit it is killed and the namespaces deleted from here.
func (l *linkProc) close() {
	l.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-l.done:
	case <-time.After(10 * time.Second):
		syscall.Kill(-l.cmd.Process.Pid, syscall.SIGKILL)
		<-l.done
		for _, ns := range []string{nsCli, nsUp} {
			if nsExists(ns) {
				if err := run("ip", "netns", "del", ns); err != nil {
					fmt.Fprintf(os.Stderr, "peerbench: %v\n", err)
				}
			}
		}
	}
}

// linkHelper is the state of the helper process.
type linkHelper struct {
	created []string    // namespaces this process created (only these are deleted)
	tuns    [2]*os.File // [0] client side, [1] upstream side
	queues  [2]*delayQueue
	failed  chan error
}

// runLink is the helper's main: set up, print READY, relay until told to stop.
func runLink() int {
	h := &linkHelper{failed: make(chan error, 4)}
	atExit(h.teardown)
	defer runExitHooks()
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	if os.Getppid() == 1 { // the parent died before Pdeathsig was armed
		return 1
	}
	if err := h.setup(); err != nil {
		fmt.Fprintf(os.Stderr, "peerbench link: %v\n", err)
		return 1
	}
	h.start()
	fmt.Println("READY")
	stdinClosed := make(chan struct{})
	goSafe(func() { io.Copy(io.Discard, os.Stdin); close(stdinClosed) })
	select {
	case <-sigs:
	case <-stdinClosed:
	case err := <-h.failed:
		fmt.Fprintf(os.Stderr, "peerbench link: relay failed: %v\n", err)
		return 1
	}
	return 0
}

// openTUN creates a TUN device (IP packets, no extra header) and returns it
// as a non-blocking file served by the Go poller. The device lives as long as
// the file stays open.
func openTUN(name string) (*os.File, error) {
	fd, err := unix.Open("/dev/net/tun", unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("open /dev/net/tun: %w", err)
	}
	ifr, err := unix.NewIfreq(name)
	if err == nil {
		ifr.SetUint16(unix.IFF_TUN | unix.IFF_NO_PI)
		err = unix.IoctlIfreq(fd, unix.TUNSETIFF, ifr)
	}
	if err == nil {
		err = unix.SetNonblock(fd, true)
	}
	if err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("create TUN %s: %w", name, err)
	}
	return os.NewFile(uintptr(fd), name), nil
}

func (h *linkHelper) setup() error {
	for _, ns := range []string{nsCli, nsUp} {
		if nsExists(ns) {
			return fmt.Errorf("namespace %s already exists; refusing to touch it", ns)
		}
	}
	sides := []struct{ ns, ip, dev string }{
		{nsCli, cliIP, "wpbc" + strconv.Itoa(os.Getpid())},
		{nsUp, upIP, "wpbu" + strconv.Itoa(os.Getpid())},
	}
	for i, s := range sides {
		f, err := openTUN(s.dev)
		if err != nil {
			return err
		}
		h.tuns[i] = f
		if err := run("ip", "netns", "add", s.ns); err != nil {
			return err
		}
		h.created = append(h.created, s.ns)
		for _, argv := range [][]string{
			{"ip", "link", "set", s.dev, "netns", s.ns},
			{"ip", "-n", s.ns, "link", "set", "lo", "up"},
			// No IPv6 link-local address: no router solicitations on the link.
			{"ip", "-n", s.ns, "link", "set", s.dev, "addrgenmode", "none"},
			{"ip", "-n", s.ns, "addr", "add", s.ip + "/24", "dev", s.dev},
			{"ip", "-n", s.ns, "link", "set", s.dev, "mtu", "1500", "up"},
		} {
			if err := run(argv...); err != nil {
				return err
			}
		}
	}
	return nil
}

// nanosleep sleeps with the kernel's high-resolution timer (about 0.1 ms
// late at worst); the Go runtime's timers can be up to a millisecond late.
// It blocks the calling thread, which only the relay's two writers do.
func nanosleep(d time.Duration) {
	ts := unix.NsecToTimespec(int64(d))
	unix.Nanosleep(&ts, nil)
}

// start runs both directions of the relay: a reader per TUN filling a delay
// queue, and a writer per queue emptying it into the other TUN.
func (h *linkHelper) start() {
	for dir := 0; dir < 2; dir++ {
		src, dst := h.tuns[dir], h.tuns[1-dir]
		q := newDelayQueue(oneWay, 8192, nanosleep)
		h.queues[dir] = q
		goSafe(func() { h.readTUN(src, q) })
		goSafe(func() {
			q.run(func(p []byte) {
				dst.Write(p) // a failed write loses the packet, as a link would
			})
		})
	}
}

// readTUN moves packets from src into q until src is closed.
func (h *linkHelper) readTUN(src *os.File, q *delayQueue) {
	defer q.close()
	buf := make([]byte, 65536)
	for {
		n, err := src.Read(buf)
		if err != nil {
			if !errors.Is(err, os.ErrClosed) {
				h.failed <- err
			}
			return
		}
		if inBenchNet(buf[:n]) {
			q.push(append([]byte(nil), buf[:n]...))
		}
	}
}

// teardown closes the TUN devices (which removes them) and deletes the
// namespaces this process created.
func (h *linkHelper) teardown() {
	for i, f := range h.tuns {
		if f != nil {
			f.Close()
			h.tuns[i] = nil
		}
	}
	for i := len(h.created) - 1; i >= 0; i-- {
		ns := h.created[i]
		if out, _ := exec.Command("ip", "netns", "pids", ns).Output(); len(strings.TrimSpace(string(out))) > 0 {
			fmt.Fprintf(os.Stderr, "peerbench link: processes still in %s: %s\n", ns, strings.Join(strings.Fields(string(out)), " "))
		}
		if err := run("ip", "netns", "del", ns); err != nil {
			fmt.Fprintf(os.Stderr, "peerbench link: %v\n", err)
		}
	}
	h.created = nil
	if d := h.queues[0]; d != nil && d.dropped.Load()+h.queues[1].dropped.Load() > 0 {
		fmt.Fprintf(os.Stderr, "peerbench link: %d packets dropped (queue full)\n", d.dropped.Load()+h.queues[1].dropped.Load())
	}
}
