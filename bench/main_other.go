//go:build !linux

// Command bench is the warmport benchmark. It needs Linux (network
// namespaces, TUN devices, /proc); see bench/README.md.
package main

import (
	"fmt"
	"os"
)

func main() {
	fmt.Fprintln(os.Stderr, "bench: Linux only (network namespaces, TUN devices and /proc); see bench/README.md")
	os.Exit(1)
}
