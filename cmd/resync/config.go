package main

import (
	"flag"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/BurntSushi/toml"
)

// A task file (--config task.toml) holds a command's options: every flag
// has its twin, named with underscores for dashes; a repeatable flag takes
// an array; the source and each target are tables. Flags given on the
// command line win.
//
//	name = "orders"
//	status_addr = "127.0.0.1:7780"
//	heartbeat_interval = "1s"
//	dbs = "0,3"
//	map_db = ["3:0"]
//	block_key_prefix = ["tmp:", "cache:"]
//	on_conflict = "overwrite"
//
//	[source]
//	url = "redis://10.0.0.1:6379"
//	password_file = "/etc/resync/source.pw"
//
//	[[target]]
//	url = "redis://10.0.0.2:6379"
type taskFile struct {
	settings map[string]any
	Source   endpointIn
	Target   []endpointIn
}

type endpointIn struct {
	URL          string `toml:"url"`
	PasswordFile string `toml:"password_file"`
}

// readTaskFile reads a task file; apply checks its settings against a
// command's flags.
func readTaskFile(path string) (*taskFile, error) {
	var raw map[string]any
	if _, err := toml.DecodeFile(path, &raw); err != nil {
		return nil, fmt.Errorf("--config %s: %w", path, err)
	}
	f := &taskFile{settings: map[string]any{}}
	for k, v := range raw {
		switch k {
		case "source":
			t, ok := v.(map[string]any)
			if !ok {
				return nil, fmt.Errorf("--config %s: source must be a table ([source])", path)
			}
			e, err := endpointFrom(t)
			if err != nil {
				return nil, fmt.Errorf("--config %s: [source]: %w", path, err)
			}
			f.Source = e
		case "target":
			ts, ok := v.([]map[string]any)
			if !ok {
				return nil, fmt.Errorf("--config %s: target must be tables ([[target]])", path)
			}
			for i, t := range ts {
				e, err := endpointFrom(t)
				if err != nil {
					return nil, fmt.Errorf("--config %s: [[target]] %d: %w", path, i+1, err)
				}
				f.Target = append(f.Target, e)
			}
		default:
			f.settings[k] = v
		}
	}
	if len(f.Target) > 1 {
		return nil, fmt.Errorf("--config %s: %d [[target]] tables: one target per task for now (several come with the topologies issue)", path, len(f.Target))
	}
	return f, nil
}

func endpointFrom(t map[string]any) (endpointIn, error) {
	var e endpointIn
	for k, v := range t {
		s, ok := v.(string)
		switch {
		case !ok:
			return e, fmt.Errorf("%s must be a string", k)
		case k == "url":
			e.URL = s
		case k == "password_file":
			e.PasswordFile = s
		default:
			return e, fmt.Errorf("unknown setting %s", k)
		}
	}
	return e, nil
}

// repeatable marks a flag that may be given several times (an array in a
// task file).
type repeatable interface{ repeatable() }

// apply sets the flags of fs that the command line left unset from the
// file's settings. A setting of resync sync that fs lacks is skipped, so
// that verify and restore read a sync's task file; one that names no flag
// at all is an error.
func (f *taskFile) apply(fs *flag.FlagSet, path string) error {
	sync, _ := newSyncFlags(io.Discard)
	set := map[string]bool{}
	fs.Visit(func(fl *flag.Flag) { set[fl.Name] = true })
	var unknown []string
	keys := make([]string, 0, len(f.settings))
	for k := range f.settings {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		name := strings.ReplaceAll(k, "_", "-")
		fl := fs.Lookup(name)
		if fl == nil && sync.Lookup(name) != nil {
			continue // a sync setting this command has no use for
		}
		if fl == nil || name == "config" {
			unknown = append(unknown, k)
			continue
		}
		if set[name] {
			continue
		}
		values := []any{f.settings[k]}
		if list, ok := f.settings[k].([]any); ok {
			if _, ok := fl.Value.(repeatable); !ok {
				return fmt.Errorf("--config %s: %s takes one value, not a list", path, k)
			}
			values = list
		}
		for _, v := range values {
			switch v.(type) {
			case string, int64, bool, float64:
			default:
				return fmt.Errorf("--config %s: %s: %v is not a string, number or boolean", path, k, v)
			}
			if err := fs.Set(name, fmt.Sprint(v)); err != nil {
				return fmt.Errorf("--config %s: %s: %w", path, k, err)
			}
		}
	}
	if len(unknown) > 0 {
		return fmt.Errorf("--config %s: unknown settings: %s", path, strings.Join(unknown, ", "))
	}
	return nil
}
