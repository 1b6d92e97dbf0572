package main

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/BurntSushi/toml"
)

// taskFile is a task's settings in TOML (--config): every option of
// resync sync has its twin here; flags given on the command line win.
//
//	name = "orders"
//	status_addr = "127.0.0.1:7780"
//	heartbeat_interval = "1s"
//	buffer_bytes = 67108864
//	log_format = "text"
//
//	[source]
//	url = "redis://10.0.0.1:6379"
//	password_file = "/etc/resync/source.pw"
//
//	[[target]]
//	url = "redis://10.0.0.2:6379"
type taskFile struct {
	Name              string       `toml:"name"`
	StatusAddr        *string      `toml:"status_addr"`
	HeartbeatInterval duration     `toml:"heartbeat_interval"`
	BufferBytes       int          `toml:"buffer_bytes"`
	LogFormat         string       `toml:"log_format"`
	Source            endpointIn   `toml:"source"`
	Target            []endpointIn `toml:"target"`
}

type endpointIn struct {
	URL          string `toml:"url"`
	PasswordFile string `toml:"password_file"`
}

// duration reads "1s", "500ms".
type duration struct{ time.Duration }

func (d *duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return err
	}
	d.Duration = v
	return nil
}

// readTaskFile reads and checks a task file.
func readTaskFile(path string) (*taskFile, error) {
	var f taskFile
	md, err := toml.DecodeFile(path, &f)
	if err != nil {
		return nil, fmt.Errorf("--config %s: %w", path, err)
	}
	if und := md.Undecoded(); len(und) > 0 {
		var keys []string
		for _, k := range und {
			keys = append(keys, k.String())
		}
		return nil, fmt.Errorf("--config %s: unknown settings: %s", path, strings.Join(keys, ", "))
	}
	if len(f.Target) > 1 {
		return nil, fmt.Errorf("--config %s: %d [[target]] tables: one target per task for now (several come with the topologies issue)", path, len(f.Target))
	}
	if f.HeartbeatInterval.Duration < 0 || f.BufferBytes < 0 {
		return nil, errors.New("--config " + path + ": negative heartbeat_interval or buffer_bytes")
	}
	return &f, nil
}
