// Package poller is an event loop's mechanics on Linux, apart from what it
// relays: an edge-triggered epoll set whose keys are the caller's (uint64),
// waited on in Go's netpoller; a wake queue of posted keys behind an eventfd;
// and a cache of pipes for splice(2). It knows nothing of pairs or sockets
// beyond their fds. It builds on Linux only.
package poller
