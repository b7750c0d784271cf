package main

import (
	"context"
	"errors"
	"fmt"
	"log"
	"os"
	"os/signal"
	"syscall"
)

// exitInterrupted is the exit code of a run cut short (a signal, or its output closed)
// whose history showed nothing wrong; 0, 1 and 2 are pass, fail and could not run.
const exitInterrupted = 3

// errOutputClosed is the cause of an interruption by a closed stdout or stderr.
var errOutputClosed = errors.New("output closed (broken pipe)")

// interruptContext returns a context that ends with the first SIGINT, SIGTERM or
// SIGHUP, or when a write to a closed stdout or stderr raises SIGPIPE (which then
// returns an error instead of killing the process, so the topology is still torn
// down); a SIGPIPE while both still have a reader came from one of the campaign's own
// connections and is ignored. A second SIGINT, SIGTERM or SIGHUP exits at once; the children die with the
// process (topology's death signal).
func interruptContext(logger *log.Logger) (context.Context, func()) {
	ctx, cancel := context.WithCancelCause(context.Background())
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGPIPE)
	go func() {
		for sig := range sigs {
			switch {
			case sig == syscall.SIGPIPE:
				if brokenPipe(os.Stdout) || brokenPipe(os.Stderr) {
					cancel(errOutputClosed)
				}
			case ctx.Err() == nil:
				cancel(fmt.Errorf("%v signal received", sig))
				logger.Printf("campaign: %v: stopping, then checking the history gathered so far (again to quit at once)", sig)
			default:
				logger.Printf("campaign: %v again: quitting without a report", sig)
				os.Exit(exitInterrupted)
			}
		}
	}()
	return ctx, func() { cancel(nil) }
}
