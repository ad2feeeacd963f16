// Package tlsup is the TLS side of an upstream: a verified client
// configuration built from the user's options, a handshake bounded by a
// context, and a Conn the warm pool can hold, probe cheaply on borrow and
// half-close (close_notify after the bytes).
//
// How a forwarder uses it:
//
//   - Once, before listening: cfg, err := opts.Config(remoteHost); an error
//     is a usage error (exit 2), printed after "warmport: ". Print
//     opts.Warning() once if it is not empty. Share cfg by every dial to that
//     REMOTE: its session cache is what makes refills resume.
//   - To dial: open the socket (TCP or Unix) as for a plain upstream, then
//     Dial(ctx, raw, cfg) with the same dial timeout in ctx. A failure is a
//     *HandshakeError (raw is closed); Describe(err) is the line to print,
//     once per distinct text, and to record as the client's error.
//   - On borrow: Probe(). nil means hand it out; an error means discard it
//     (stale). Buffered() > 0 means a greeting is held: Read returns it
//     first, so the relay just reads; such a connection must not be recycled.
//   - Relay: Read/Write carry the application's bytes (count those).
//     CloseWrite on the client's EOF; Read's io.EOF is the server's end.
//     Close after a clean end; Abort when the pair ends in error.
//
// Error texts name the forward flags (--tls-ca, --tls-server-name, ...)
// because they exist to tell a user what to pass; the package reads no flags.
package tlsup
