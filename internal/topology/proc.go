package topology

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"

	"github.com/pbft-nats/pbft/internal/poll"
)

// killWait bounds how long Kill waits for a killed process to end.
const killWait = 10 * time.Second

// Process is one child process of a topology: a NATS server, a replica or a gateway.
type Process struct {
	name     string
	cmd      *exec.Cmd
	logPath  string
	logStart int64 // where this run's output begins in logPath (the file is shared by restarts)
	done     chan struct{}
	// set before done is closed
	waitErr error
	logEnd  int64
}

// spawn starts bin with args and env (on top of this process's environment without
// PBFT_ variables), appending its stderr to logPath, and its stdout too unless stdout
// is given.
func spawn(name, bin string, args, env []string, logPath string, stdin io.Reader, stdout io.Writer) (*Process, error) {
	f, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	defer f.Close() // the child has its own descriptor
	fmt.Fprintf(f, "=== topology: start %s at %s\n", name, time.Now().UTC().Format(time.RFC3339Nano))
	start, err := f.Seek(0, io.SeekEnd)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, args...)
	cmd.Env = append(baseEnv(), env...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = stdin, f, f
	if stdout != nil {
		cmd.Stdout = stdout
	}
	// A writer that is not a file is fed by a goroutine: do not wait for it forever
	// when a grandchild keeps the pipe open.
	cmd.WaitDelay = 5 * time.Second
	setDeathSignal(cmd)
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("topology: start %s: %w", name, err)
	}
	p := &Process{name: name, cmd: cmd, logPath: logPath, logStart: start, done: make(chan struct{})}
	go func() {
		err := cmd.Wait()
		p.logEnd = -1
		if st, serr := os.Stat(logPath); serr == nil {
			p.logEnd = st.Size()
		}
		p.waitErr = err
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

// Pid is the process id.
func (p *Process) Pid() int { return p.cmd.Process.Pid }

// Exited reports whether the process has ended.
func (p *Process) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// WaitExit waits up to d for the process to end and reports whether it did.
func (p *Process) WaitExit(d time.Duration) bool {
	select {
	case <-p.done:
		return true
	case <-time.After(d):
		return false
	}
}

// Err is how the process ended (nil for exit status 0, and while it runs).
func (p *Process) Err() error {
	if !p.Exited() {
		return nil
	}
	return p.waitErr
}

// Log returns what this run of the process wrote to its log (its stderr, and its stdout
// unless that went elsewhere), without what earlier or later runs appended.
func (p *Process) Log() string {
	b, err := os.ReadFile(p.logPath)
	if err != nil {
		return "(" + err.Error() + ")"
	}
	end := int64(len(b))
	if p.Exited() && p.logEnd >= p.logStart && p.logEnd < end {
		end = p.logEnd
	}
	if p.logStart > end {
		return ""
	}
	return string(b[p.logStart:end])
}

// Kill sends SIGKILL (by PID) and waits up to 10s for the process to end.
func (p *Process) Kill() error {
	p.sendKill()
	return p.waitKilled()
}

func (p *Process) sendKill() {
	if !p.Exited() {
		_ = p.cmd.Process.Kill()
	}
}

func (p *Process) waitKilled() error {
	if !p.WaitExit(killWait) {
		return fmt.Errorf("topology: %s (pid %d) did not end after SIGKILL", p.name, p.Pid())
	}
	return nil
}

func (p *Process) signal(sig syscall.Signal) error {
	if p.Exited() {
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
func (p *Process) waitStopped(timeout time.Duration) error {
	dir := fmt.Sprintf("/proc/%d/task", p.Pid())
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	err := poll.Until(ctx, time.Millisecond, func() (bool, error) {
		tasks, err := os.ReadDir(dir)
		if err != nil {
			return false, fmt.Errorf("topology: %s: %w", p.name, err)
		}
		stopped := 0
		for _, task := range tasks {
			stat, err := os.ReadFile(dir + "/" + task.Name() + "/stat")
			// The state follows the command name in parentheses: "pid (comm) T ...".
			if i := strings.LastIndexByte(string(stat), ')'); err == nil && i >= 0 && i+2 < len(stat) && (stat[i+2] == 'T' || stat[i+2] == 't') {
				stopped++
			}
		}
		return stopped == len(tasks), nil
	})
	if err == context.DeadlineExceeded {
		return fmt.Errorf("topology: %s not stopped %v after SIGSTOP", p.name, timeout)
	}
	return err
}
