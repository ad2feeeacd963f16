//go:build !linux

// Command peerbench is the warmport benchmark. It needs Linux (network
// namespaces, TUN devices, /proc); see peerbench/README.md.
package main

import (
	"fmt"
	"os"
)

func main() {
	fmt.Fprintln(os.Stderr, "peerbench: Linux only (network namespaces, TUN devices and /proc); see peerbench/README.md")
	os.Exit(1)
}
