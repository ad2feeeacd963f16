package forward

import (
	"time"

	"golang.org/x/sys/unix"
)

// kernelVerdict: see the replay rule (replayrule.go).
func kernelVerdict(fd, written int) verdict {
	outq, err := unix.IoctlGetInt(fd, unix.SIOCOUTQ) // bytes written and not acknowledged
	if err != nil || outq < written {
		return consumed // acknowledgements are cumulative: some of ours arrived
	}
	info, err := unix.GetsockoptTCPInfo(fd, unix.IPPROTO_TCP, unix.TCP_INFO)
	if err != nil {
		return consumed
	}
	switch info.State {
	case unix.BPF_TCP_CLOSE:
		return unconsumed
	case unix.BPF_TCP_CLOSE_WAIT, unix.BPF_TCP_ESTABLISHED:
		return undecided
	}
	return consumed
}

// closedByKernel tells whether the kernel holds fd's TCP connection closed
// (a reset or a timeout; our own FIN answered is one way more).
func closedByKernel(fd int) bool {
	info, err := unix.GetsockoptTCPInfo(fd, unix.IPPROTO_TCP, unix.TCP_INFO)
	return err == nil && info.State == unix.BPF_TCP_CLOSE
}

// waitReset waits up to d for fd to be reset (poll's POLLERR or POLLHUP).
func waitReset(fd int, d time.Duration) {
	pfd := []unix.PollFd{{Fd: int32(fd)}}
	unix.Poll(pfd, int(d/time.Millisecond)+1)
}
