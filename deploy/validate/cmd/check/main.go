// Command check validates rendered manifests with the checks of package validate.
//
//	check FILE...         validate multi-document YAML files ("-" is stdin) together, as
//	                      one deployment, e.g. the output of `kubectl kustomize
//	                      deploy/k8s` and of `kubectl kustomize deploy/k8s/admin`
//	check -render DIR     print the kustomization in DIR as package validate renders it
//
// It exits 1 when a check fails.
package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

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
	// The files are one deployment (the base and the administrator's Job): checked
	// together, so that each sees the other's objects.
	var all []byte
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
		all = append(append(all, data...), "\n---\n"...)
	}
	objs, problems := validate.Load(all)
	problems = append(problems, validate.Check(objs)...)
	for _, p := range problems {
		fmt.Println(p)
	}
	if len(problems) > 0 {
		os.Exit(1)
	}
	fmt.Printf("%s: %d objects, no problems\n", strings.Join(flag.Args(), " "), len(objs))
}
