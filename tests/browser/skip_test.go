package browser

import (
	"os"
	"os/exec"
	"strings"
	"testing"
)

// TestMissingBrowser runs TestLivePage in a child test process that finds no browser:
// it must skip, saying how to run it, unless PBFT_REQUIRE_BROWSER=1 makes it fail.
func TestMissingBrowser(t *testing.T) {
	if os.Getenv("PBFT_BROWSER_CHILD") == "1" {
		t.Skip("the child process runs only TestLivePage")
	}
	emptyPath := t.TempDir()
	for _, tc := range []struct {
		require  string
		wantExit bool // false: exit 0
		want     string
	}{
		{"", false, "--- SKIP: TestLivePage"},
		{"1", true, "--- FAIL: TestLivePage"},
	} {
		cmd := exec.CommandContext(t.Context(), os.Args[0], "-test.run=^TestLivePage$", "-test.v")
		for _, kv := range os.Environ() {
			if !strings.HasPrefix(kv, "PBFT_") && !strings.HasPrefix(kv, "PATH=") {
				cmd.Env = append(cmd.Env, kv)
			}
		}
		cmd.Env = append(cmd.Env, "PATH="+emptyPath, "PBFT_BROWSER_CHILD=1", "PBFT_REQUIRE_BROWSER="+tc.require)
		out, err := cmd.CombinedOutput()
		if (err != nil) != tc.wantExit || !strings.Contains(string(out), tc.want) ||
			!strings.Contains(string(out), "apt-get install -y chromium") {
			t.Errorf("PBFT_REQUIRE_BROWSER=%q without a browser: err %v, want %q and how to install it; output:\n%s", tc.require, err, tc.want, out)
		}
	}
}
