//go:build unix

package main

import (
	"os"
	"path/filepath"
	"testing"
)

// Only a pipe whose reader is gone is a closed output: a pipe still read, and a file,
// are not (a SIGPIPE then came from one of the campaign's own connections).
func TestBrokenPipe(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if brokenPipe(w) {
		t.Fatal("a pipe with its reader open is broken")
	}
	r.Close()
	if !brokenPipe(w) {
		t.Fatal("a pipe whose reader closed is not broken")
	}
	f, err := os.Create(filepath.Join(t.TempDir(), "out"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if brokenPipe(f) {
		t.Fatal("a file is broken")
	}
}
