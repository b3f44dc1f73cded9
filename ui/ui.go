// Package ui is sessiond's web console: a page that shows the cluster
// (members, shards × nodes, moves, lag, throughput), explores sessions and
// runs the leadership-transfer and drain operations. The page is plain
// HTML, CSS and JavaScript modules embedded in the binary; it reads and
// changes everything through the node's public JSON API with the token the
// user enters, so this package only serves static files.
package ui

import (
	"embed"
	"io/fs"
	"net/http"
	"strings"
)

//go:embed static
var files embed.FS

// Prefix is where the console is served.
const Prefix = "/ui/"

// contentSecurityPolicy allows nothing but the console's own files and
// requests to the node that served them, so a session value that slipped
// past escaping still could not run a script or send data elsewhere.
const contentSecurityPolicy = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
	"connect-src 'self'; form-action 'none'; frame-ancestors 'none'; base-uri 'none'"

// Exists reports whether name, a path below Prefix ("" for the page
// itself), is one of the console's files. Directories other than the root
// are not: nothing is listed.
func Exists(name string) bool {
	if name == "" {
		return true
	}
	if strings.HasSuffix(name, "/") {
		return false
	}
	st, err := fs.Stat(files, "static/"+name)
	return err == nil && !st.IsDir()
}

// Handler serves the console's files under Prefix for GET and HEAD. It
// holds no state and is safe for concurrent use.
func Handler() http.Handler {
	static, err := fs.Sub(files, "static")
	if err != nil {
		panic(err) // the embedded tree is fixed at build time
	}
	fileServer := http.StripPrefix(strings.TrimSuffix(Prefix, "/"), http.FileServerFS(static))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", contentSecurityPolicy)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Cache-Control", "no-cache")
		fileServer.ServeHTTP(w, r)
	})
}
