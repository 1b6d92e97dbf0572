package status_test

import (
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"

	"github.com/resync/resync/internal/status"
	"github.com/resync/resync/internal/task"
)

// idle is a task that has not run: enough for what the HTTP layer does.
func idle() *task.Task { return task.New(task.Config{Name: "idle"}) }

func serve(h http.Handler, path string, header http.Header) *httptest.ResponseRecorder {
	rec := httptest.NewRecorder()
	req := httptest.NewRequest("GET", path, nil)
	for k, v := range header {
		req.Header[k] = v
	}
	h.ServeHTTP(rec, req)
	return rec
}

// With a token, every route wants it, as a bearer token or as the
// password of basic authentication under any user name.
func TestTokenGuardsEveryRoute(t *testing.T) {
	const token = "s3cret-token"
	h := status.Handler(idle(), status.Options{Token: token, Pprof: true})
	basic := func(user, pw string) http.Header {
		r := httptest.NewRequest("GET", "/", nil)
		r.SetBasicAuth(user, pw)
		return r.Header
	}
	for _, path := range []string{"/", "/dashboard.js", "/dashboard.css", "/status", "/metrics", "/debug/pprof/", "/debug/pprof/symbol"} {
		for _, c := range []struct {
			name   string
			header http.Header
			want   int
		}{
			{"none", nil, http.StatusUnauthorized},
			{"bearer", http.Header{"Authorization": {"Bearer " + token}}, http.StatusOK},
			{"wrong bearer", http.Header{"Authorization": {"Bearer " + token + "x"}}, http.StatusUnauthorized},
			{"bearer prefix", http.Header{"Authorization": {"Bearer " + token[:5]}}, http.StatusUnauthorized},
			{"basic", basic("anyone", token), http.StatusOK},
			{"basic, no user", basic("", token), http.StatusOK},
			{"basic, token as user", basic(token, ""), http.StatusUnauthorized},
			{"wrong basic", basic("anyone", "nope"), http.StatusUnauthorized},
			{"other scheme", http.Header{"Authorization": {"Token " + token}}, http.StatusUnauthorized},
		} {
			rec := serve(h, path, c.header)
			if rec.Code != c.want {
				t.Errorf("%s with %s: %d, want %d", path, c.name, rec.Code, c.want)
			}
			if rec.Code == http.StatusUnauthorized && !strings.HasPrefix(rec.Header().Get("WWW-Authenticate"), `Basic realm="resync"`) {
				t.Errorf("%s with %s: WWW-Authenticate %q", path, c.name, rec.Header().Get("WWW-Authenticate"))
			}
			if rec.Header().Get("X-Content-Type-Options") != "nosniff" {
				t.Errorf("%s with %s: no nosniff", path, c.name)
			}
			if rec.Code == http.StatusUnauthorized && strings.Contains(rec.Body.String(), "idle") {
				t.Errorf("%s with %s: the 401 tells about the task: %s", path, c.name, rec.Body)
			}
		}
	}
	// Without a token, open.
	if rec := serve(status.Handler(idle(), status.Options{}), "/status", nil); rec.Code != http.StatusOK {
		t.Errorf("no token: %d", rec.Code)
	}
}

func TestCheckListen(t *testing.T) {
	for _, c := range []struct {
		addr, token string
		ok          bool
	}{
		{"127.0.0.1:7780", "", true},
		{"127.1.2.3:0", "", true},
		{"[::1]:7780", "", true},
		{"localhost:7780", "", true},
		{"LocalHost:7780", "", true},
		{":7780", "", false},
		{"0.0.0.0:7780", "", false},
		{"[::]:7780", "", false},
		{"10.0.0.5:7780", "", false},
		{"example.com:7780", "", false},
		{"127.0.0.1", "", false}, // no port: not an address
		{":7780", "t", true},
		{"0.0.0.0:7780", "t", true},
	} {
		err := status.CheckListen(c.addr, c.token)
		if (err == nil) != c.ok {
			t.Errorf("CheckListen(%q, %q) = %v", c.addr, c.token, err)
		}
		if err != nil && c.token == "" && c.addr != "127.0.0.1" {
			for _, hint := range []string{"--status-token", "--status-token-file", "127.0.0.1"} {
				if !strings.Contains(err.Error(), hint) {
					t.Errorf("CheckListen(%q): %q does not name %s", c.addr, err, hint)
				}
			}
		}
	}
}

// pprof only when asked for, and never through http.DefaultServeMux
// (which importing net/http/pprof fills).
func TestPprofOnlyWhenAsked(t *testing.T) {
	off := status.Handler(idle(), status.Options{})
	on := status.Handler(idle(), status.Options{Pprof: true})
	for _, path := range []string{"/debug/pprof/", "/debug/pprof/goroutine?debug=1", "/debug/pprof/symbol"} {
		if rec := serve(off, path, nil); rec.Code != http.StatusNotFound {
			t.Errorf("pprof off: %s %d", path, rec.Code)
		}
		if rec := serve(on, path, nil); rec.Code != http.StatusOK {
			t.Errorf("pprof on: %s %d", path, rec.Code)
		}
	}
	// The command line may hold a password (in a URL): never served.
	if rec := serve(on, "/debug/pprof/cmdline", nil); rec.Code == http.StatusOK {
		t.Errorf("pprof on: /debug/pprof/cmdline answered %d", rec.Code)
	}
}

// Without a token the server answers loopback names only: a web page
// whose DNS name was rebound to 127.0.0.1 gets nothing.
func TestLoopbackHostWithoutToken(t *testing.T) {
	srv, err := status.Start("127.0.0.1:0", idle(), nil, status.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	for host, want := range map[string]int{"": http.StatusOK, "localhost": http.StatusOK, "evil.example": http.StatusForbidden} {
		req, _ := http.NewRequest("GET", "http://"+srv.Addr()+"/status", nil)
		if host != "" {
			req.Host = host
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("Host %q: %d, want %d", host, resp.StatusCode, want)
		}
	}
}

// The page and its two files, under a strict Content-Security-Policy:
// nothing inline, nothing from elsewhere, and the script reads /status
// alone.
func TestDashboardFiles(t *testing.T) {
	h := status.Handler(idle(), status.Options{})
	files := map[string]string{"/": "text/html", "/dashboard.js": "text/javascript", "/dashboard.css": "text/css"}
	body := map[string]string{}
	for path, typ := range files {
		rec := serve(h, path, nil)
		if rec.Code != http.StatusOK || !strings.HasPrefix(rec.Header().Get("Content-Type"), typ) {
			t.Fatalf("%s: %d %s", path, rec.Code, rec.Header().Get("Content-Type"))
		}
		csp := rec.Header().Get("Content-Security-Policy")
		if !strings.Contains(csp, "default-src 'self'") || strings.Contains(csp, "unsafe") {
			t.Errorf("%s: CSP %q", path, csp)
		}
		body[path] = rec.Body.String()
	}
	page := body["/"]
	for _, m := range regexp.MustCompile(`(?s)<script([^>]*)>(.*?)</script>`).FindAllStringSubmatch(page, -1) {
		if !strings.Contains(m[1], `src="/`) || strings.TrimSpace(m[2]) != "" {
			t.Errorf("an inline script, which the CSP refuses: %s", m[0])
		}
	}
	if strings.Contains(page, "<style") || regexp.MustCompile(`\son[a-z]+=|\sstyle=`).MatchString(page) {
		t.Error("the page has inline style or event handlers, which the CSP refuses")
	}
	for _, f := range []string{page, body["/dashboard.js"], body["/dashboard.css"]} {
		if regexp.MustCompile(`(?i)(https?:)?//[a-z0-9.-]+\.[a-z]{2,}/`).MatchString(f) || strings.Contains(f, "@import") {
			t.Error("a dashboard file refers to another site")
		}
	}
	js := body["/dashboard.js"]
	for _, m := range regexp.MustCompile(`fetch\(([^,)]*)`).FindAllStringSubmatch(js, -1) {
		if m[1] != `"/status"` {
			t.Errorf("the script fetches %s", m[1])
		}
	}
	if strings.Contains(js, "innerHTML") || strings.Contains(js, "XMLHttpRequest") || strings.Contains(js, "WebSocket") {
		t.Error("the script writes HTML or reads other than by fetch(/status)")
	}
	for _, path := range []string{"/index.html", "/nope", "/status/x"} {
		if rec := serve(h, path, nil); rec.Code != http.StatusNotFound {
			t.Errorf("%s: %d", path, rec.Code)
		}
	}
}
