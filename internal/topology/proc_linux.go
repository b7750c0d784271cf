package topology

import (
	"os/exec"
	"syscall"
)

// setDeathSignal makes the kernel SIGKILL the child when the process that started it
// dies, so a crashed test leaves no replicas behind. The child gets its own process
// group, so a Ctrl-C in the terminal reaches only the starter, which decides how the
// children end (an interrupted campaign still checks what it gathered).
func setDeathSignal(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true}
}
