package pool

import (
	"strconv"

	"golang.org/x/sys/unix"
)

// established returns nil if fd's TCP state (TCP_INFO) is ESTABLISHED. A
// greeting followed by the peer's FIN shows as CLOSE_WAIT, one followed by a
// RST as CLOSE, and our own CloseWrite as FIN_WAIT1/2.
func established(fd int) error {
	info, err := unix.GetsockoptTCPInfo(fd, unix.IPPROTO_TCP, unix.TCP_INFO)
	if err != nil {
		return err
	}
	if info.State != unix.BPF_TCP_ESTABLISHED {
		return tcpStateError(info.State)
	}
	return nil
}

// tcpStateError reports a connection found in a TCP state other than
// ESTABLISHED.
type tcpStateError uint8

var tcpStateNames = [...]string{
	1: "ESTABLISHED", 2: "SYN_SENT", 3: "SYN_RECV", 4: "FIN_WAIT1", 5: "FIN_WAIT2", 6: "TIME_WAIT",
	7: "CLOSE", 8: "CLOSE_WAIT", 9: "LAST_ACK", 10: "LISTEN", 11: "CLOSING",
}

func (s tcpStateError) Error() string {
	if int(s) < len(tcpStateNames) && tcpStateNames[s] != "" {
		return "tcp state " + tcpStateNames[s]
	}
	return "tcp state " + strconv.Itoa(int(s))
}
