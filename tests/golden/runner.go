package golden

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// RunOptions say how Run drives a gateway binary through the cases.
type RunOptions struct {
	Repeat int // runs of each case (at least 1)
	// Timeout bounds a run whose stdin is closed after the last line: the process must
	// exit by itself within it (the client protocol's end-of-input rule).
	Timeout time.Duration
	// Hold, if positive, keeps stdin open this long instead, as a harness that never
	// closes it would, then compares what was printed and kills the process.
	Hold time.Duration
	// Env is the processes' whole environment; nil: this process's.
	Env []string
}

// Cases lists the .in files of each path: every NAME.in of a directory, in name order,
// or the path itself.
func Cases(paths ...string) ([]string, error) {
	var ins []string
	for _, p := range paths {
		st, err := os.Stat(p)
		if err != nil {
			return nil, err
		}
		if !st.IsDir() {
			ins = append(ins, p)
			continue
		}
		m, err := filepath.Glob(filepath.Join(p, "*.in"))
		if err != nil {
			return nil, err
		}
		if len(m) == 0 {
			return nil, fmt.Errorf("golden: no .in files in %s", p)
		}
		ins = append(ins, m...)
	}
	return ins, nil
}

// RunCase runs bin once on the case in (NAME.in, compared with NAME.out) and returns
// "" when its stdout matches, else what went wrong.
func RunCase(bin, in string, o RunOptions) (diff string, elapsed time.Duration, err error) {
	input, err := os.ReadFile(in)
	if err != nil {
		return "", 0, err
	}
	want, err := os.ReadFile(strings.TrimSuffix(in, ".in") + ".out")
	if err != nil {
		return "", 0, err
	}
	start := time.Now()
	stdout, problem, err := run(bin, input, o)
	elapsed = time.Since(start)
	if err != nil || problem != "" {
		return problem, elapsed, err
	}
	return Diff(string(want), stdout), elapsed, nil
}

// run starts bin with input on stdin and returns its stdout, or a problem such as a
// process that did not exit in time.
func run(bin string, input []byte, o RunOptions) (stdout []byte, problem string, err error) {
	cmd := exec.Command(bin)
	cmd.Env = o.Env
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, io.Discard
	// A killed gateway has no children holding its stdout; the delay only bounds Wait
	// should that ever change.
	cmd.WaitDelay = 2 * time.Second
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, "", err
	}
	if err := cmd.Start(); err != nil {
		return nil, "", err
	}
	// Wait closes stdin once the process has exited, which ends a write that a process
	// not reading its input would block.
	go func() {
		_, _ = stdin.Write(input)
		if o.Hold <= 0 {
			_ = stdin.Close()
		}
	}()
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	if o.Hold > 0 {
		select {
		case err := <-done:
			return out.Bytes(), fmt.Sprintf("exited (%v) while stdin was still open", err), nil
		case <-time.After(o.Hold):
		}
		_ = cmd.Process.Kill()
		<-done
		return out.Bytes(), "", nil
	}
	select {
	case err := <-done:
		if err != nil {
			return out.Bytes(), fmt.Sprintf("exit: %v", err), nil
		}
		return out.Bytes(), "", nil
	case <-time.After(o.Timeout):
		_ = cmd.Process.Kill()
		<-done
		return out.Bytes(), fmt.Sprintf("did not exit within %v of stdin closing", o.Timeout), nil
	}
}

// Run runs every case o.Repeat times against bin, writes a line per failure (the
// first five with the difference), the median and longest run, and a summary to w,
// and returns how many runs failed.
func Run(w io.Writer, bin string, ins []string, o RunOptions) (failed int, err error) {
	o.Repeat = max(o.Repeat, 1)
	var times []time.Duration
	for _, in := range ins {
		for i := range o.Repeat {
			diff, elapsed, err := RunCase(bin, in, o)
			if err != nil {
				return failed, err
			}
			times = append(times, elapsed)
			if diff == "" {
				continue
			}
			failed++
			if failed <= 5 {
				fmt.Fprintf(w, "FAIL %s (run %d): %s\n", filepath.Base(in), i+1, diff)
			} else {
				fmt.Fprintf(w, "FAIL %s (run %d)\n", filepath.Base(in), i+1)
			}
		}
	}
	slices.Sort(times)
	if len(times) > 0 {
		fmt.Fprintf(w, "median wall per run: %v, max %v\n", times[len(times)/2].Round(time.Millisecond), times[len(times)-1].Round(time.Millisecond))
	}
	fmt.Fprintf(w, "%d passed, %d failed\n", len(times)-failed, failed)
	return failed, nil
}
