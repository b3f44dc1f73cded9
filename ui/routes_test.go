package ui_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/sessiond/sessiond/internal/poll"
)

// The console's files are served without a token (they hold no data),
// everything the page reads still needs one, and the two routes the page
// adds answer every bad request with the API's JSON errors.
func TestConsoleFilesAreOpenAndItsDataNeedsTokens(t *testing.T) {
	members := startMembers(t, 3, 4)
	n1 := members[0].url

	for _, path := range []string{"/ui/", "/ui/index.html", "/ui/js/app.js", "/ui/style.css"} {
		resp, err := http.Get(n1 + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("GET %s without a token: %d, want 200", path, resp.StatusCode)
		}
		if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "script-src 'self'") {
			t.Errorf("GET %s: Content-Security-Policy %q does not keep scripts to the console's own", path, csp)
		}
	}
	wantError(t, "GET", n1+"/ui/js/", "", http.StatusNotFound, "not_found")
	wantError(t, "GET", n1+"/ui/../v1/cluster", "", http.StatusNotFound, "not_found")
	wantError(t, "GET", n1+"/ui/%3Cscript%3E", "", http.StatusNotFound, "not_found")
	wantError(t, "POST", n1+"/ui/", "", http.StatusUnauthorized, "unauthorized")
	wantError(t, "GET", n1+"/v1/token", "", http.StatusUnauthorized, "unauthorized")
	wantError(t, "GET", n1+"/v1/token", dataToken, http.StatusForbidden, "forbidden")
	wantError(t, "GET", n1+"/v1/nodes/n2/cluster", "", http.StatusUnauthorized, "unauthorized")
	wantError(t, "GET", n1+"/v1/nodes/nobody/cluster", readToken, http.StatusNotFound, "node_not_found")
	wantError(t, "GET", n1+"/v1/nodes/%3Cimg%3E/cluster", readToken, http.StatusNotFound, "node_not_found")

	for token, want := range map[string]string{readToken: "read", adminToken: "read,data,admin"} {
		var got struct {
			TokensRequired bool     `json:"tokensRequired"`
			Scopes         []string `json:"scopes"`
		}
		if err := getJSON(n1+"/v1/token", token, &got); err != nil {
			t.Fatal(err)
		}
		if !got.TokensRequired || strings.Join(got.Scopes, ",") != want {
			t.Errorf("GET /v1/token with the %s token: %+v, want scopes %s", want, got, want)
		}
	}

	// Any node relays any other's view, with the caller's token.
	for _, m := range members {
		var view struct {
			Node string `json:"node"`
		}
		if err := getJSON(n1+"/v1/nodes/"+m.id+"/cluster", readToken, &view); err != nil {
			t.Fatal(err)
		}
		if view.Node != m.id {
			t.Errorf("GET /v1/nodes/%s/cluster answered for %q", m.id, view.Node)
		}
	}

	// A member whose HTTP port stops answering while gossip still has it
	// alive is reported unreachable; once gossip declares it dead, not alive.
	members[2].srv.Close()
	wantError(t, "GET", n1+"/v1/nodes/n3/cluster", readToken, http.StatusServiceUnavailable, "node_unreachable")
	members[2].kill()
	poll.Until(t, 30*time.Second, "n3 reported not alive", func() error {
		return errorIs("GET", n1+"/v1/nodes/n3/cluster", readToken, http.StatusConflict, "node_not_alive")
	})
}

func wantError(t *testing.T, method, url, token string, status int, code string) {
	t.Helper()
	if err := errorIs(method, url, token, status, code); err != nil {
		t.Error(err)
	}
}

// errorIs checks that a request is answered with the API's JSON error of
// the given status and code.
func errorIs(method, url, token string, status int, code string) error {
	body, err := call(method, url, token, "", status)
	if err != nil {
		return err
	}
	var e struct {
		Error struct{ Code, Message string }
	}
	if err := json.Unmarshal(body, &e); err != nil || e.Error.Code != code || e.Error.Message == "" {
		return fmt.Errorf("%s %s: %s, want code %s", method, url, body, code)
	}
	return nil
}
