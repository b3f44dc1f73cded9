package httpapi

import (
	_ "embed"
	"net/http"

	"github.com/labstack/echo/v4"
)

// openAPIDocument is the OpenAPI 3.1 description of every route this
// package registers, their responses and the error envelope with every
// code. The contract test (openapi_test.go) checks real responses against
// it and fails when a route is missing, so edit it together with the
// routes.
//
//go:embed openapi.json
var openAPIDocument []byte

// OpenAPI returns the OpenAPI 3.1 document served at /v1/openapi.json. The
// slice is shared: callers must not modify it.
func OpenAPI() []byte { return openAPIDocument }

// openAPI serves the document. It is a GET under /v1, so with tokens
// configured it needs the read scope like the other /v1 reads.
func (s *Server) openAPI(c echo.Context) error {
	return c.Blob(http.StatusOK, echo.MIMEApplicationJSON, openAPIDocument)
}
