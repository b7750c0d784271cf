package topology_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pbft-nats/pbft/internal/topology"
)

// replicaProfiles fetches CPU profiles of replicas (their PBFT_PPROF endpoints) while a
// benchmark's load runs, then their allocation profiles and metrics, into dir as
// <name>-<replica>.cpu.pb.gz, .alloc.pb.gz and .metrics.txt.
type replicaProfiles struct {
	b    *testing.B
	dir  string
	name string
	top  *topology.Topology
	ids  []string
	done chan error
}

// profileReplicas starts CPU profiles of ids lasting d (whole seconds, at least one).
func profileReplicas(b *testing.B, dir string, top *topology.Topology, ids []string, d time.Duration) *replicaProfiles {
	p := &replicaProfiles{b: b, dir: dir, top: top, ids: ids, done: make(chan error, len(ids)),
		name: strings.NewReplacer("/", "-", "=", "").Replace(b.Name())}
	secs := max(int(d/time.Second), 1)
	for _, id := range ids {
		go func() {
			p.done <- p.fetch(id, fmt.Sprintf("profile?seconds=%d", secs), "cpu", time.Duration(secs+30)*time.Second)
		}()
	}
	return p
}

// finish waits for the CPU profiles and fetches the allocation profiles and metrics.
func (p *replicaProfiles) finish() {
	for range p.ids {
		if err := <-p.done; err != nil {
			p.b.Error(err)
		}
	}
	for _, id := range p.ids {
		if err := p.fetch(id, "allocs", "alloc", 30*time.Second); err != nil {
			p.b.Error(err)
		}
		// The pbft_ metrics (batch sizes, messages by kind) say what the profiles cost per.
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		err := saveURL(ctx, p.top.ReplicaHTTP(id)+"/metrics", filepath.Join(p.dir, fmt.Sprintf("%s-%s.metrics.txt", p.name, id)))
		cancel()
		if err != nil {
			p.b.Error(err)
		}
	}
}

func (p *replicaProfiles) fetch(id, path, kind string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	if err := saveURL(ctx, p.top.ReplicaHTTP(id)+"/debug/pprof/"+path, p.file(id, kind)); err != nil {
		return fmt.Errorf("%s profile of %s: %w", kind, id, err)
	}
	return nil
}

// file names the profile of kind (cpu, alloc) of process id (a replica, loadgen).
func (p *replicaProfiles) file(id, kind string) string {
	return filepath.Join(p.dir, fmt.Sprintf("%s-%s.%s.pb.gz", p.name, id, kind))
}

// saveURL writes the body of a GET of url (a profile) to file.
func saveURL(ctx context.Context, url, file string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %s", url, resp.Status)
	}
	f, err := os.Create(file)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
