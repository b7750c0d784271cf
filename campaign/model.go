package campaign

import (
	"fmt"
	"hash/fnv"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/anishathalye/porcupine"
)

// kvInput is the input of a porcupine operation.
type kvInput struct {
	Kind  Kind
	Key   string
	Value string // set
}

// kvOutput is the output of a porcupine operation: the value a get read.
type kvOutput struct {
	Value   string
	Unknown bool // indeterminate: the output was never seen
}

// KVModel is the sequential specification of the gateway's key-value facade,
// partitioned by key: the state of a partition is the key's value, "" when absent
// (GET of a missing key answers 200 with an empty body, and the campaign never writes
// an empty value). set stores, del removes (and succeeds on a missing key), get returns
// the value.
var KVModel = porcupine.Model{
	Partition: func(history []porcupine.Operation) [][]porcupine.Operation {
		byKey := map[string][]porcupine.Operation{}
		var keys []string
		for _, op := range history {
			k := op.Input.(kvInput).Key
			if _, ok := byKey[k]; !ok {
				keys = append(keys, k)
			}
			byKey[k] = append(byKey[k], op)
		}
		slices.Sort(keys)
		out := make([][]porcupine.Operation, 0, len(keys))
		for _, k := range keys {
			out = append(out, byKey[k])
		}
		return out
	},
	Init: func() any { return "" },
	Step: func(state, input, output any) (bool, any) {
		in := input.(kvInput)
		out := output.(kvOutput)
		st := state.(string)
		switch in.Kind {
		case KindSet:
			return true, in.Value
		case KindDel:
			return true, ""
		default: // get
			return out.Unknown || out.Value == st, st
		}
	},
	Equal: func(a, b any) bool { return a.(string) == b.(string) },
	Hash: func(s any) uint64 {
		h := fnv.New64a()
		_, _ = h.Write([]byte(s.(string)))
		return h.Sum64()
	},
	DescribeOperation: func(input, output any) string {
		in := input.(kvInput)
		out := output.(kvOutput)
		switch in.Kind {
		case KindSet:
			return fmt.Sprintf("set(%s, %q)", in.Key, in.Value)
		case KindDel:
			return fmt.Sprintf("del(%s)", in.Key)
		}
		if out.Unknown {
			return fmt.Sprintf("get(%s) -> ?", in.Key)
		}
		return fmt.Sprintf("get(%s) -> %q", in.Key, out.Value)
	},
	DescribeState: func(s any) string {
		if s.(string) == "" {
			return "(absent)"
		}
		return fmt.Sprintf("%q", s.(string))
	},
}

// Operations converts a history to porcupine's form. Definite failures are left out:
// they did not happen. An indeterminate write may have taken effect at any time after
// its invocation, so, as Jepsen does, it gets a completion after everything else in the
// history; an indeterminate read constrains nothing and is left out.
func Operations(ops []Op) []porcupine.Operation {
	var end time.Duration
	for _, o := range ops {
		end = max(end, o.Complete, o.Invoke)
	}
	// porcupine's visualisation wants dense, zero-based client ids.
	procs := map[int]int{}
	var ids []int
	for _, o := range ops {
		if _, ok := procs[o.Process]; !ok {
			procs[o.Process] = 0
			ids = append(ids, o.Process)
		}
	}
	slices.Sort(ids)
	for i, p := range ids {
		procs[p] = i
	}
	out := make([]porcupine.Operation, 0, len(ops))
	for _, o := range ops {
		if o.Status == StatusFail || (o.Status == StatusInfo && o.Kind == KindGet) {
			continue
		}
		ret := int64(o.Complete)
		output := kvOutput{}
		if o.Status == StatusInfo {
			ret = int64(end) + 1
			output.Unknown = true
		} else if o.Kind == KindGet {
			output.Value = o.Value
		}
		in := kvInput{Kind: o.Kind, Key: o.Key}
		if o.Kind == KindSet {
			in.Value = o.Value
		}
		out = append(out, porcupine.Operation{ClientId: procs[o.Process], Input: in, Output: output,
			Call: int64(o.Invoke), Return: ret})
	}
	return out
}

// Linearizability is the checker's verdict.
type Linearizability struct {
	Result  string        `json:"result"` // porcupine: Ok, Illegal or Unknown (timed out)
	Ops     int           `json:"ops"`    // operations checked
	Elapsed time.Duration `json:"elapsed_ns"`
	// Visualization is the HTML file porcupine wrote for a history that is not Ok.
	Visualization string `json:"visualization,omitempty"`
	// Keys whose partition is not linearizable (best effort, from the partial
	// linearizations porcupine returns).
	Detail string `json:"detail,omitempty"`
}

// CheckLinearizable checks ops against KVModel within timeout; when the result is not
// Ok and dir is not empty, porcupine's visualisation goes to dir/linearizability.html.
func CheckLinearizable(ops []Op, timeout time.Duration, dir string) Linearizability {
	pops := Operations(ops)
	start := time.Now()
	res, info := porcupine.CheckOperationsVerbose(KVModel, pops, timeout)
	l := Linearizability{Result: string(res), Ops: len(pops), Elapsed: time.Since(start)}
	if res != porcupine.Ok {
		l.Detail = partitionDetail(pops, info)
		if dir != "" {
			path := filepath.Join(dir, "linearizability.html")
			if err := os.MkdirAll(dir, 0o755); err == nil {
				if err := porcupine.VisualizePath(KVModel, info, path); err == nil {
					l.Visualization = path
				} else {
					l.Detail += fmt.Sprintf("; visualisation failed: %v", err)
				}
			}
		}
	}
	return l
}

// partitionDetail names, per key, how many operations the longest partial
// linearization covers out of the partition's total.
func partitionDetail(pops []porcupine.Operation, info porcupine.LinearizationInfo) string {
	parts := KVModel.Partition(pops)
	lins := info.PartialLinearizations()
	var b strings.Builder
	for i, p := range parts {
		if i >= len(lins) || len(p) == 0 {
			continue
		}
		longest := 0
		for _, l := range lins[i] {
			longest = max(longest, len(l))
		}
		if longest < len(p) {
			fmt.Fprintf(&b, "key %s: at most %d of %d operations linearize; ", p[0].Input.(kvInput).Key, longest, len(p))
		}
	}
	return strings.TrimSuffix(b.String(), "; ")
}
