package dialer

import (
	"fmt"
	"log/slog"
	"strings"
	"testing"
)

func TestParseURL(t *testing.T) {
	tests := []struct {
		url  string
		want Options
	}{
		{"redis://127.0.0.1:6380", Options{Addr: "127.0.0.1:6380"}},
		{"redis://localhost", Options{Addr: "localhost:6379"}},
		{"10.0.0.5:7000", Options{Addr: "10.0.0.5:7000"}},
		{"redis://:secret@h:1/2", Options{Addr: "h:1", Password: "secret", DB: 2}},
		{"redis://alice:pw@h:1/", Options{Addr: "h:1", Username: "alice", Password: "pw"}},
		{"redis://alice@h:1", Options{Addr: "h:1", Username: "alice"}},
		{"redis://:p%40ss%2Fw%23rd@h:1", Options{Addr: "h:1", Password: "p@ss/w#rd"}},
		{"redis://[::1]:6379/15", Options{Addr: "[::1]:6379", DB: 15}},
		{"rediss://u:p@h:6390", Options{Addr: "h:6390", Username: "u", Password: "p", TLS: &TLS{}}},
	}
	for _, tt := range tests {
		got, err := ParseURL(tt.url)
		if err != nil {
			t.Errorf("%s: %v", tt.url, err)
			continue
		}
		if got.Addr != tt.want.Addr || got.Username != tt.want.Username || got.Password != tt.want.Password ||
			got.DB != tt.want.DB || (got.TLS == nil) != (tt.want.TLS == nil) {
			t.Errorf("%s: got %+v, want %+v", tt.url, got.GoString(), tt.want.GoString())
		}
	}
}

func TestParseURLErrorsHidePassword(t *testing.T) {
	const pw = "Hunter2-secret"
	for _, bad := range []string{
		"http://u:" + pw + "@h:1",
		"redis://u:" + pw + "@h:99999",
		"redis://u:" + pw + "@h:1/x",
		"redis://u:" + pw + "@h:1/0?tls=1",
		"redis://u:" + pw + "@:1",
		"redis://u:" + pw + "%zz@h:1",
		"redis://u:" + pw + "@h:port",
		"redis://u:" + pw + "@h:1/-1",
		"redis://:" + pw + "#x@h:1",
		"redis://u:12345/" + pw + "@h:1",
		"redis://:" + pw + "?x@h",
		"redis://:%zz" + pw + "@h",
	} {
		_, err := ParseURL(bad)
		if err == nil {
			t.Errorf("%s: accepted", bad)
			continue
		}
		if strings.Contains(err.Error(), pw) {
			t.Errorf("error shows the password: %v", err)
		}
		if !strings.Contains(err.Error(), "bad redis URL") {
			t.Errorf("error does not say what was wrong: %v", err)
		}
	}
}

func TestOptionsNeverPrintPassword(t *testing.T) {
	const pw = "Hunter2-secret"
	o, err := ParseURL("rediss://bob:" + pw + "@h:1/3")
	if err != nil {
		t.Fatal(err)
	}
	var logged strings.Builder
	slog.New(slog.NewTextHandler(&logged, nil)).Info("connect", "target", o)
	for _, s := range []string{fmt.Sprint(o), fmt.Sprintf("%v %+v %#v %s", o, o, o, o), o.URL(), logged.String()} {
		if strings.Contains(s, pw) {
			t.Errorf("printed the password: %s", s)
		}
	}
	if got := o.URL(); got != "rediss://bob:***@h:1/3" {
		t.Errorf("URL() = %s", got)
	}
}
