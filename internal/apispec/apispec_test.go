package apispec

import (
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"
)

// The embedded document parses, validates as OpenAPI 3.1 and names an
// error response for every status its error codes use.
func TestDocumentIsValidOpenAPI31(t *testing.T) {
	s, err := Load()
	if err != nil {
		t.Fatal(err)
	}
	if s.Version() != "3.1.0" {
		t.Fatalf("openapi = %q, want 3.1.0", s.Version())
	}
	if !slices.Contains(s.ErrorCodes(), "outcome_unknown") || len(s.Operations()) < 20 {
		t.Fatalf("codes %v, operations %v", s.ErrorCodes(), s.Operations())
	}
}

// A path of the document that is the request's path is matched before a
// templated one, and /ui is not taken for /ui/.
func TestConcretePathsMatchFirst(t *testing.T) {
	s, err := Load()
	if err != nil {
		t.Fatal(err)
	}
	for path, want := range map[string]string{
		"/ui": "GET /ui", "/ui/": "GET /ui/", "/ui/style.css": "GET /ui/{file}", "/v1/cluster": "GET /v1/cluster",
	} {
		route, _, err := s.findRoute(httptest.NewRequest(http.MethodGet, path, nil))
		if err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		if got := route.Method + " " + route.Path; got != want {
			t.Errorf("GET %s matches %s, want %s", path, got, want)
		}
	}
	if _, _, err := s.findRoute(httptest.NewRequest(http.MethodPost, "/ui/", nil)); err == nil {
		t.Error("POST /ui/ matches an operation")
	}
}
