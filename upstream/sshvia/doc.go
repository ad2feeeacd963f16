// Package sshvia reaches upstreams through an SSH server, as `ssh -L` and
// `ssh -J` do: a tunnel of one SSH connection, or a few (see defaultConns
// for when more pay), kept alive and healed after a drop, and direct-tcpip
// channels on them that a pool can hold open and probe.
//
// A forwarder uses it like this:
//
//   - Before the ready line, Open(ctx, Config{...}); its error is one line
//     (refused, host key with fingerprint and the line to accept it, or
//     each auth method and why it failed): print it and exit 1.
//   - The pool dials with Tunnel.Dial(ctx, REMOTE), ctx bounded by
//     --dial-timeout: while the connection heals, Dial waits up to ctx. A
//     refused open is an *ssh.OpenChannelError carrying sshd's reason.
//   - On borrow, Channel.Probe: nil means alive (a greeting the target sent
//     is kept and returned by Read first, once); an error means dead. Probe
//     is valid only before the first Read.
//   - Channels are not file descriptors: relay them with the portable
//     copier. They have no deadlines (os.ErrNoDeadline): time idle pairs
//     out with a timer and Abort. The client's EOF becomes CloseWrite; the
//     target's EOF is io.EOF from Read. An error for which IsDropped is
//     true means the SSH connection was lost: the pair ends in error with
//     that reason, never with a clean EOF.
//   - Tunnel.String is JSON "via": user@host:port after the SSH config
//     (the alias "bastion" shows as e.g. "deploy@10.0.0.5:22").
package sshvia
