// White-box (package pool): it hands the external tests one private number,
// the wait they prove Close does not sit out, as net/http's export_test.go does.
package pool

// DialerLinger is how long an idle background dialer waits for more work.
const DialerLinger = dialerLinger
