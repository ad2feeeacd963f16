package testsrv

import (
	"os/exec"
	"slices"
	"strings"
	"testing"
)

// The binary links no test support: nothing shipped imports this package.
func TestNotShipped(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "github.com/warmport/warmport").CombinedOutput()
	if err != nil {
		t.Fatalf("go list -deps: %v\n%s", err, out)
	}
	deps := strings.Fields(string(out))
	if !slices.Contains(deps, "github.com/warmport/warmport/pool") {
		t.Fatalf("go list -deps lists no pool: got %d packages; want warmport's dependencies", len(deps))
	}
	if slices.Contains(deps, "github.com/warmport/warmport/internal/testsrv") {
		t.Error("warmport links internal/testsrv; want it imported by tests only")
	}
}
