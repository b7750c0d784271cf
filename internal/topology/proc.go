package topology

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"
)

// proc is one child process.
type proc struct {
	name    string
	cmd     *exec.Cmd
	done    chan struct{}
	waitErr error // set before done is closed
}

// spawn starts bin with args and env (on top of this process's environment without
// PBFT_ variables), appending its stderr and stdout to logPath.
func spawn(name, bin string, args, env []string, logPath string) (*proc, error) {
	f, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	defer f.Close() // the child has its own descriptor
	fmt.Fprintf(f, "=== topology: start %s at %s\n", name, time.Now().UTC().Format(time.RFC3339Nano))
	cmd := exec.Command(bin, args...)
	cmd.Env = append(baseEnv(), env...)
	cmd.Stdout, cmd.Stderr = f, f
	setDeathSignal(cmd)
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("topology: start %s: %w", name, err)
	}
	p := &proc{name: name, cmd: cmd, done: make(chan struct{})}
	go func() {
		p.waitErr = cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

// baseEnv is the environment without PBFT_ variables, so a developer's settings never
// leak into the processes.
func baseEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "PBFT_") {
			env = append(env, kv)
		}
	}
	return env
}

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

func (p *proc) signal(sig syscall.Signal) error {
	if p.exited() {
		return fmt.Errorf("topology: %s has exited (%v)", p.name, p.waitErr)
	}
	if err := p.cmd.Process.Signal(sig); err != nil {
		return err
	}
	if sig == syscall.SIGSTOP {
		return p.waitStopped(5 * time.Second)
	}
	return nil
}

// waitStopped polls until every thread of the process is stopped: the signal is sent
// when kill returns, but a thread running on another core may go on for a moment, and
// a caller that checks the process is frozen must not see it answer.
func (p *proc) waitStopped(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	dir := fmt.Sprintf("/proc/%d/task", p.cmd.Process.Pid)
	for {
		tasks, err := os.ReadDir(dir)
		if err != nil {
			return fmt.Errorf("topology: %s: %w", p.name, err)
		}
		stopped := 0
		for _, task := range tasks {
			stat, err := os.ReadFile(dir + "/" + task.Name() + "/stat")
			// The state follows the command name in parentheses: "pid (comm) T ...".
			if i := strings.LastIndexByte(string(stat), ')'); err == nil && i >= 0 && i+2 < len(stat) && (stat[i+2] == 'T' || stat[i+2] == 't') {
				stopped++
			}
		}
		if stopped == len(tasks) {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("topology: %s not stopped %v after SIGSTOP", p.name, timeout)
		}
		time.Sleep(time.Millisecond) // polling /proc for the stop to take hold, with a deadline
	}
}

// kill sends SIGKILL (by PID) and waits up to 10s for the process to end.
func (p *proc) kill() error {
	if !p.exited() {
		_ = p.cmd.Process.Kill()
	}
	select {
	case <-p.done:
		return nil
	case <-time.After(10 * time.Second):
		return fmt.Errorf("topology: %s (pid %d) did not end after SIGKILL", p.name, p.cmd.Process.Pid)
	}
}
