package config

import (
	"fmt"
	"io"
	"reflect"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
)

// Variable describes one PBFT_ variable, as Settings' struct tags define it.
type Variable struct {
	Name    string // the full name, PBFT_ prefix included
	Default string // "" when the setting has no default
	Desc    string
	field   int
}

// decoder is a setting type that parses itself (trace.Switch).
type decoder interface {
	Decode(string) error
}

// Variables lists every PBFT_ variable in the order of Settings.
func Variables() []Variable {
	t := reflect.TypeFor[Settings]()
	vars := make([]Variable, 0, t.NumField())
	for i := range t.NumField() {
		f := t.Field(i)
		vars = append(vars, Variable{Name: f.Tag.Get("env"), Default: f.Tag.Get("default"), Desc: f.Tag.Get("desc"), field: i})
	}
	return vars
}

// apply sets each field whose variable lookup returns a value.
func apply(s *Settings, lookup func(Variable) (string, bool)) error {
	sv := reflect.ValueOf(s).Elem()
	for _, v := range Variables() {
		raw, ok := lookup(v)
		if !ok {
			continue
		}
		if err := decode(sv.Field(v.field), raw); err != nil {
			return fmt.Errorf("%s=%q: %v", v.Name, raw, err)
		}
	}
	return nil
}

// decode parses raw into the field f, for the kinds Settings uses.
func decode(f reflect.Value, raw string) error {
	if d, ok := f.Addr().Interface().(decoder); ok {
		return d.Decode(raw)
	}
	switch f.Interface().(type) {
	case time.Duration:
		d, err := time.ParseDuration(raw)
		if err != nil {
			return err
		}
		f.SetInt(int64(d))
		return nil
	case []string:
		var list []string
		if strings.TrimSpace(raw) != "" {
			list = strings.Split(raw, ",")
		}
		f.Set(reflect.ValueOf(list))
		return nil
	}
	switch f.Kind() {
	case reflect.String:
		f.SetString(raw)
	case reflect.Int:
		n, err := strconv.ParseInt(raw, 0, 0)
		if err != nil {
			return fmt.Errorf("not an integer")
		}
		f.SetInt(n)
	case reflect.Uint64:
		n, err := strconv.ParseUint(raw, 0, 64)
		if err != nil {
			return fmt.Errorf("not a non-negative integer")
		}
		f.SetUint(n)
	default:
		return fmt.Errorf("config: no decoder for %s", f.Type())
	}
	return nil
}

// WriteVariables writes every PBFT_ variable with its default and meaning, the
// environment section of the commands' help.
func WriteVariables(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "  variable\tdefault\tmeaning")
	for _, v := range Variables() {
		def := v.Default
		if def == "" {
			def = "(empty)"
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\n", v.Name, def, v.Desc)
	}
	return tw.Flush()
}
