package config

import (
	"bytes"
	"os"
	"reflect"
	"strings"
	"testing"
)

// A variable's bare name is not a setting: a container's DATA_DIR, TICK or CLUSTER must
// not reconfigure a replica or the gateway.
func TestLoadIgnoresNamesWithoutThePrefix(t *testing.T) {
	for _, v := range Variables() {
		t.Setenv(strings.TrimPrefix(v.Name, "PBFT_"), "harmful")
	}
	t.Setenv("DATA_DIR", "/nonexistent")
	t.Setenv("TICK", "1h")
	t.Setenv("REQUEST_TIMEOUT", "1ns")
	t.Setenv("CLUSTER", "x")
	t.Setenv("FAULT", "crash")
	s, err := Load()
	if err != nil {
		t.Fatalf("Load with only bare names set: %v", err)
	}
	if !reflect.DeepEqual(s, Default()) {
		t.Fatalf("bare names changed the settings:\n got %+v\nwant %+v", s, Default())
	}
}

// Default is the defaults alone, whatever the environment says.
func TestDefaultReadsNoEnvironment(t *testing.T) {
	want := Default()
	t.Setenv("PBFT_TICK", "1h")
	t.Setenv("PBFT_CLUSTER", "other")
	if got := Default(); !reflect.DeepEqual(got, want) {
		t.Fatalf("Default changed with the environment: %+v", got)
	}
}

// Every field is a documented PBFT_ variable with a unique name, and every default
// parses (Default panics otherwise).
func TestEveryVariableIsNamedAndDescribed(t *testing.T) {
	seen := map[string]bool{}
	vars := Variables()
	if len(vars) != reflect.TypeFor[Settings]().NumField() {
		t.Fatalf("%d variables for %d fields", len(vars), reflect.TypeFor[Settings]().NumField())
	}
	for _, v := range vars {
		if !strings.HasPrefix(v.Name, "PBFT_") || len(v.Name) == len("PBFT_") || seen[v.Name] {
			t.Errorf("variable name %q: want a unique PBFT_ name", v.Name)
		}
		seen[v.Name] = true
		if v.Desc == "" {
			t.Errorf("%s has no desc tag", v.Name)
		}
	}
	_ = Default()
}

// Each variable can be set, and the help shows each with its default.
func TestEveryVariableIsReadAndListed(t *testing.T) {
	values := map[string]string{"PBFT_NODE_IDS": "a,b,c,d", "PBFT_TRACE": "on", "PBFT_PPROF": "on", "PBFT_FAULT": "silent",
		"PBFT_LOG_LEVEL": "debug", "PBFT_CHECKPOINT_INTERVAL": "64", "PBFT_LOG_WINDOW": "128", "PBFT_BATCH_MAX": "3",
		"PBFT_BATCH_TIMEOUT": "1ms", "PBFT_VIEW_CHANGE_TIMEOUT": "2s", "PBFT_STATUS_INTERVAL": "200ms",
		"PBFT_TICK": "20ms", "PBFT_REQUEST_TIMEOUT": "9s", "PBFT_EMBEDDED_MAX_PAYLOAD": "1048576",
		"PBFT_STDIO_WINDOW": "64", "PBFT_JOIN": "on", "PBFT_MAX_PROCS": "1", "PBFT_GC_HEAP_MB": "32",
		// A replica outside the initial ids joins PBFT_NODE_IDS (PBFT_JOIN=on agrees).
		"PBFT_NODE_ID": "d", "PBFT_INITIAL_IDS": "a,b,c,e"}
	for _, v := range Variables() {
		val, ok := values[v.Name]
		if !ok {
			val = "set-" + strings.ToLower(strings.TrimPrefix(v.Name, "PBFT_"))
		}
		t.Setenv(v.Name, val)
	}
	s, err := Load()
	if err != nil {
		t.Fatal(err)
	}
	def := reflect.ValueOf(Default())
	got := reflect.ValueOf(s)
	for _, v := range Variables() {
		if reflect.DeepEqual(got.Field(v.field).Interface(), def.Field(v.field).Interface()) {
			t.Errorf("%s=%s left the setting at its default", v.Name, os.Getenv(v.Name))
		}
	}
	var help bytes.Buffer
	if err := WriteVariables(&help); err != nil {
		t.Fatal(err)
	}
	for _, v := range Variables() {
		line := ""
		for l := range strings.SplitSeq(help.String(), "\n") {
			if strings.HasPrefix(strings.TrimSpace(l), v.Name+" ") {
				line = l
			}
		}
		if line == "" || v.Default != "" && !strings.Contains(line, " "+v.Default+" ") || !strings.Contains(line, v.Desc) {
			t.Errorf("help line of %s: %q", v.Name, line)
		}
	}
}

// The README's configuration table names every variable.
func TestREADMEListsEveryVariable(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range Variables() {
		if !strings.Contains(string(readme), "| `"+v.Name+"` |") {
			t.Errorf("README.md's configuration table lacks %s", v.Name)
		}
	}
}

// Load in an environment without any PBFT_ variable is Default: envconfig's defaults
// and Default's own applier read the same tags.
func TestLoadWithoutVariablesIsDefault(t *testing.T) {
	for _, kv := range os.Environ() {
		if name, _, _ := strings.Cut(kv, "="); strings.HasPrefix(name, "PBFT_") {
			t.Setenv(name, "") // restores it when the test ends
			os.Unsetenv(name)
		}
	}
	for _, v := range Variables() {
		t.Setenv(v.Name, "")
		os.Unsetenv(v.Name)
	}
	s, err := Load()
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(s, Default()) {
		t.Fatalf("Load without PBFT_ variables:\n got %+v\nwant %+v", s, Default())
	}
}
