package config

import (
	"fmt"
	"io"
	"reflect"
	"strconv"
	"text/tabwriter"
	"time"

	"github.com/kelseyhightower/envconfig"
)

// Variable describes one PBFT_ variable, as Settings' struct tags define it.
type Variable struct {
	Name    string // the full name, PBFT_ prefix included
	Default string // "" when the setting has no default
	Desc    string
	field   int
}

// decoder is a setting type that parses itself (trace.Switch); envconfig calls the same
// method.
type decoder interface {
	Decode(string) error
}

// Variables lists every PBFT_ variable in the order of Settings.
func Variables() []Variable {
	t := reflect.TypeFor[Settings]()
	vars := make([]Variable, 0, t.NumField())
	for i := range t.NumField() {
		f := t.Field(i)
		vars = append(vars, Variable{Name: f.Tag.Get("envconfig"), Default: f.Tag.Get("default"), Desc: f.Tag.Get("desc"), field: i})
	}
	return vars
}

// applyDefaults sets each field that has a default tag to it. It exists because
// envconfig applies defaults only while reading the environment, and Default must not
// read it: a developer's exported PBFT_NATS_URL must not change what tests and tools
// start from.
func applyDefaults(s *Settings) error {
	sv := reflect.ValueOf(s).Elem()
	for _, v := range Variables() {
		if v.Default == "" {
			continue
		}
		if err := decodeDefault(sv.Field(v.field), v.Default); err != nil {
			return fmt.Errorf("%s default %q: %v", v.Name, v.Default, err)
		}
	}
	return nil
}

// decodeDefault parses a default tag into the field f, for the kinds that have
// defaults in Settings.
func decodeDefault(f reflect.Value, raw string) error {
	if d, ok := f.Addr().Interface().(decoder); ok {
		return d.Decode(raw)
	}
	if f.Type() == reflect.TypeFor[time.Duration]() {
		d, err := time.ParseDuration(raw)
		f.SetInt(int64(d))
		return err
	}
	switch f.Kind() {
	case reflect.String:
		f.SetString(raw)
	case reflect.Int:
		n, err := strconv.ParseInt(raw, 0, 0)
		f.SetInt(n)
		return err
	case reflect.Uint64:
		n, err := strconv.ParseUint(raw, 0, 64)
		f.SetUint(n)
		return err
	default:
		return fmt.Errorf("no default decoder for %s", f.Type())
	}
	return nil
}

// variablesFormat is the environment section of the commands' help, for
// envconfig.Usagef: one line per variable with its default and meaning.
const variablesFormat = "  variable\tdefault\tmeaning\n" +
	"{{range .}}  {{usage_key .}}\t{{or (usage_default .) \"(empty)\"}}\t{{usage_description .}}\n{{end}}"

// WriteVariables writes every PBFT_ variable with its default and meaning, the
// environment section of the commands' help.
func WriteVariables(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	if err := envconfig.Usagef("", &Settings{}, tw, variablesFormat); err != nil {
		return err
	}
	return tw.Flush()
}
