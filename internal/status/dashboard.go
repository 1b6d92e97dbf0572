package status

import (
	"embed"
	"net/http"
)

// The dashboard is three static files, no build step and nothing
// fetched from elsewhere: its script reads /status every second and
// draws the chart on a canvas itself.
//
//go:embed web/dashboard.html web/dashboard.css web/dashboard.js
var web embed.FS

// dashboardCSP allows the page's own files and /status, nothing else:
// no inline script or style, no frames, no forms.
const dashboardCSP = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; " +
	"base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

// serveDashboard adds the dashboard's routes: the page at / (only: other
// paths are 404) and its script and style sheet.
func serveDashboard(mux *http.ServeMux) {
	for route, f := range map[string]struct{ file, typ string }{
		"GET /{$}":           {"web/dashboard.html", "text/html; charset=utf-8"},
		"GET /dashboard.css": {"web/dashboard.css", "text/css; charset=utf-8"},
		"GET /dashboard.js":  {"web/dashboard.js", "text/javascript; charset=utf-8"},
	} {
		body, err := web.ReadFile(f.file)
		if err != nil {
			panic(err) // embedded above: cannot happen
		}
		mux.HandleFunc(route, func(w http.ResponseWriter, r *http.Request) {
			h := w.Header()
			h.Set("Content-Type", f.typ)
			h.Set("Content-Security-Policy", dashboardCSP)
			h.Set("Referrer-Policy", "no-referrer")
			h.Set("Cache-Control", "no-cache")
			w.Write(body)
		})
	}
}
