// Command run-cases runs golden cases of the client protocol against a gateway binary
// and compares its stdout with each NAME.out (package golden's rules: line by line, a
// "…" string stands for any JSON string). CI runs it on the built cmd/gateway:
//
//	run-cases [-repeat N] [-timeout D] [-hold-stdin D] GATEWAY CASE_DIR_OR_FILE...
//
// By default stdin is closed after the last line and the gateway must exit within
// -timeout; -hold-stdin D keeps stdin open for D, as a harness that never closes it
// would, then compares what was printed and kills the gateway. It exits 0 when every
// run of every case matched, 1 when one did not, 2 when it could not run.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/pbft-nats/pbft/tests/golden"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("run-cases", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	usage := func(w io.Writer) {
		fmt.Fprintln(w, "usage: run-cases [-repeat N] [-timeout D] [-hold-stdin D] GATEWAY CASE_DIR_OR_FILE...")
		fs.SetOutput(w)
		fs.PrintDefaults()
		fs.SetOutput(io.Discard)
	}
	var o golden.RunOptions
	fs.IntVar(&o.Repeat, "repeat", 1, "runs of each case")
	fs.DurationVar(&o.Timeout, "timeout", 5*time.Second, "how long the gateway may take to exit once stdin is closed")
	fs.DurationVar(&o.Hold, "hold-stdin", 0, "keep stdin open this long, then compare and kill (0: close stdin)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			usage(stdout)
			return 0
		}
		fmt.Fprintln(stderr, "run-cases:", err)
		usage(stderr)
		return 2
	}
	if fs.NArg() < 2 || o.Repeat < 1 || o.Timeout <= 0 || o.Hold < 0 {
		usage(stderr)
		return 2
	}
	ins, err := golden.Cases(fs.Args()[1:]...)
	if err != nil {
		fmt.Fprintln(stderr, "run-cases:", err)
		return 2
	}
	failed, err := golden.Run(stdout, fs.Arg(0), ins, o)
	if err != nil {
		fmt.Fprintln(stderr, "run-cases:", err)
		return 2
	}
	if failed > 0 {
		return 1
	}
	return 0
}
