package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pbft-nats/pbft/campaign"
)

// buildCampaign builds this command into a temporary directory.
func buildCampaign(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "campaign")
	if out, err := exec.CommandContext(t.Context(), "go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// startCampaign starts a long campaign in its own process group (as a shell runs a
// foreground job) with stdout and stderr on one pipe, and returns once it logged a
// progress line, with the pids of the processes it started.
func startCampaign(t *testing.T, bin, out string) (*exec.Cmd, io.ReadCloser, []int, <-chan string) {
	t.Helper()
	cmd := exec.Command(bin, "-duration", "5m", "-nats", "1", "-faults", "pause", "-seed", "7", "-out", out)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = pw, pw
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pw.Close()
	t.Cleanup(func() { _ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) })
	lines := make(chan string, 1024)
	progress := make(chan struct{})
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(pr)
		seen := false
		for sc.Scan() {
			select {
			case lines <- sc.Text():
			default:
			}
			if !seen && strings.Contains(sc.Text(), "operations (") {
				seen = true
				close(progress)
			}
		}
	}()
	select {
	case <-progress:
	case <-time.After(4 * time.Minute):
		t.Fatalf("no progress line within 4 minutes:\n%s", drain(lines))
	}
	kids := children(cmd.Process.Pid)
	if len(kids) < 6 { // a NATS server, 4 replicas, the gateway
		t.Fatalf("campaign runs %d child processes %v, want at least 6", len(kids), kids)
	}
	return cmd, pr, kids, lines
}

// children lists the processes whose parent is pid.
func children(pid int) []int {
	entries, _ := os.ReadDir("/proc")
	var out []int
	for _, e := range entries {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if ppid, _, ok := procStat(p); ok && ppid == pid {
			out = append(out, p)
		}
	}
	return out
}

// procStat returns a process's parent and state from /proc/<pid>/stat.
func procStat(pid int) (ppid int, state byte, ok bool) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, 0, false
	}
	i := strings.LastIndexByte(string(b), ')') // "pid (comm) S ppid ..."
	f := strings.Fields(string(b[i+1:]))
	if i < 0 || len(f) < 2 {
		return 0, 0, false
	}
	ppid, err = strconv.Atoi(f[1])
	return ppid, f[0][0], err == nil
}

func drain(lines <-chan string) string {
	var b strings.Builder
	for {
		select {
		case l, ok := <-lines:
			if !ok {
				return b.String()
			}
			b.WriteString(l + "\n")
		default:
			return b.String()
		}
	}
}

// waitExit waits for cmd and returns its exit code.
func waitExit(t *testing.T, cmd *exec.Cmd) int {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		var ee *exec.ExitError
		if err != nil && !errors.As(err, &ee) {
			t.Fatal(err)
		}
		return cmd.ProcessState.ExitCode()
	case <-time.After(2 * time.Minute):
		t.Fatal("campaign did not exit within 2 minutes of its interruption")
		return -1
	}
}

// noneLeft fails unless every pid in kids is gone (or a zombie about to be reaped).
func noneLeft(t *testing.T, kids []int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for _, pid := range kids {
		for {
			_, state, ok := procStat(pid)
			if !ok || state == 'Z' {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("child process %d still runs (state %c) after the campaign exited", pid, state)
			}
			time.Sleep(50 * time.Millisecond) // polling /proc with a deadline
		}
	}
}

func readReport(t *testing.T, dir string) campaign.Report {
	t.Helper()
	var rep campaign.Report
	b, err := os.ReadFile(filepath.Join(dir, "report.json"))
	if err != nil {
		t.Fatalf("no report: %v", err)
	}
	if err := json.Unmarshal(b, &rep); err != nil {
		t.Fatal(err)
	}
	return rep
}

// Ctrl-C in a terminal (SIGINT to the whole foreground process group) ends the run with
// the verdict "interrupted" and exit code 3, reports the operations gathered, and leaves
// no process behind.
func TestInterruptedCampaign(t *testing.T) {
	bin := buildCampaign(t)
	out := filepath.Join(t.TempDir(), "run")
	cmd, _, kids, lines := startCampaign(t, bin, out)
	if err := syscall.Kill(-cmd.Process.Pid, syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	code := waitExit(t, cmd)
	text := drain(lines)
	if code != exitInterrupted {
		t.Fatalf("exit code %d, want %d:\n%s", code, exitInterrupted, text)
	}
	if !strings.Contains(text, "PBFT fault campaign: INTERRUPTED") || strings.Contains(text, "FAIL") {
		t.Fatalf("output does not say interrupted:\n%s", text)
	}
	rep := readReport(t, out)
	if rep.Verdict != campaign.VerdictInterrupted || !strings.Contains(rep.Interrupted, "interrupt") ||
		rep.Ops.Total == 0 || rep.Linearizable.Result != "Ok" {
		t.Fatalf("report: verdict %q interrupted %q, %d operations, linearizability %q", rep.Verdict, rep.Interrupted, rep.Ops.Total, rep.Linearizable.Result)
	}
	noneLeft(t, kids)
}

// A closed output (the reader of a pipe went away) interrupts the run likewise instead
// of killing the campaign with SIGPIPE and leaving its processes behind.
func TestCampaignOutputClosed(t *testing.T) {
	bin := buildCampaign(t)
	out := filepath.Join(t.TempDir(), "run")
	cmd, pr, kids, _ := startCampaign(t, bin, out)
	pr.Close() // the next progress line hits a broken pipe
	if code := waitExit(t, cmd); code != exitInterrupted {
		t.Fatalf("exit code %d, want %d", code, exitInterrupted)
	}
	if rep := readReport(t, out); rep.Verdict != campaign.VerdictInterrupted || !strings.Contains(rep.Interrupted, "output closed") {
		t.Fatalf("report: verdict %q interrupted %q", rep.Verdict, rep.Interrupted)
	}
	noneLeft(t, kids)
}
