package apispec

import (
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
