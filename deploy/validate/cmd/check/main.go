// Command check validates rendered manifests with the checks of package validate.
//
//	check FILE...         validate multi-document YAML files ("-" is stdin), e.g. the
//	                      output of `kubectl kustomize deploy/k8s`
//	check -render DIR     print the kustomization in DIR as package validate renders it
//
// It exits 1 when a check fails.
package main

import (
	"flag"
	"fmt"
	"io"
	"os"

	"sigs.k8s.io/kustomize/kyaml/filesys"

	"github.com/pbft-nats/pbft/deploy/validate"
)

func main() {
	render := flag.String("render", "", "print the rendered kustomization in `dir` and exit")
	flag.Parse()
	if *render != "" {
		out, err := validate.Render(filesys.MakeFsOnDisk(), *render)
		if err != nil {
			fmt.Fprintln(os.Stderr, "check:", err)
			os.Exit(1)
		}
		os.Stdout.Write(out)
		return
	}
	if flag.NArg() == 0 {
		fmt.Fprintln(os.Stderr, "usage: check FILE... | check -render DIR")
		os.Exit(2)
	}
	failed := false
	for _, name := range flag.Args() {
		var data []byte
		var err error
		if name == "-" {
			data, err = io.ReadAll(os.Stdin)
		} else {
			data, err = os.ReadFile(name)
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "check:", err)
			os.Exit(1)
		}
		objs, problems := validate.Load(data)
		problems = append(problems, validate.Check(objs)...)
		for _, p := range problems {
			fmt.Printf("%s: %s\n", name, p)
		}
		if len(problems) > 0 {
			failed = true
			continue
		}
		fmt.Printf("%s: %d objects, no problems\n", name, len(objs))
	}
	if failed {
		os.Exit(1)
	}
}
