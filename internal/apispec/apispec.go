// Package apispec checks real HTTP responses against sessiond's OpenAPI
// document (httpapi.OpenAPI) with kin-openapi, so the document cannot
// drift from what nodes answer. The contract tests of httpapi and
// cmd/sessiond share it; no binary links it.
package apispec

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/legacy"

	"github.com/sessiond/sessiond/httpapi"
)

// Spec is the loaded and validated document. Its methods are safe for
// concurrent use.
type Spec struct {
	doc    *openapi3.T
	router routers.Router
}

var registerOnce sync.Once

// Load parses httpapi.OpenAPI and validates it as an OpenAPI document.
func Load() (*Spec, error) {
	// Change streams are checked as text: their events are not JSON.
	registerOnce.Do(func() { openapi3filter.RegisterBodyDecoder("text/event-stream", openapi3filter.PlainBodyDecoder) })
	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromData(httpapi.OpenAPI())
	if err != nil {
		return nil, fmt.Errorf("load the OpenAPI document: %w", err)
	}
	if err := doc.Validate(context.Background()); err != nil {
		return nil, fmt.Errorf("the OpenAPI document is invalid: %w", err)
	}
	router, err := legacy.NewRouter(doc)
	if err != nil {
		return nil, fmt.Errorf("route the OpenAPI document: %w", err)
	}
	return &Spec{doc: doc, router: router}, nil
}

// Version is the document's openapi member, such as "3.1.0".
func (s *Spec) Version() string { return s.doc.OpenAPI }

// Operations lists every operation of the document as "METHOD /path" with
// path parameters in braces, sorted.
func (s *Spec) Operations() []string {
	var ops []string
	for path, item := range s.doc.Paths.Map() {
		for method := range item.Operations() {
			ops = append(ops, method+" "+path)
		}
	}
	slices.Sort(ops)
	return ops
}

// ErrorCodes lists the codes of the ErrorCode schema.
func (s *Spec) ErrorCodes() []string {
	var codes []string
	for _, v := range s.doc.Components.Schemas["ErrorCode"].Value.Enum {
		codes = append(codes, fmt.Sprint(v))
	}
	return codes
}

// Checked is what CheckResponse learned about a response that matches the
// document.
type Checked struct {
	// Operation is "METHOD /path" of the route the request matched, or ""
	// when it matched none (404 not_found, 405 method_not_allowed).
	Operation string
	// Code is the error code of an error response, else "".
	Code string
}

// CheckResponse validates a response to req: status, the headers the
// document declares for it, and the body. A request that matches no route
// must have been answered with an error the document allows for any
// request (see CheckError). Only req's method and URL are used.
func (s *Spec) CheckResponse(req *http.Request, status int, header http.Header, body []byte) (Checked, error) {
	route, params, err := s.findRoute(req)
	if err != nil {
		code, cerr := s.CheckError(status, header, body)
		if cerr != nil {
			return Checked{}, fmt.Errorf("%s %s matches no operation (%v), and the answer is no documented error: %w", req.Method, req.URL.Path, err, cerr)
		}
		return Checked{Code: code}, nil
	}
	in := &openapi3filter.ResponseValidationInput{
		RequestValidationInput: &openapi3filter.RequestValidationInput{Request: req, PathParams: params, Route: route},
		Status:                 status,
		Header:                 header,
		Body:                   io.NopCloser(bytes.NewReader(body)),
		Options:                &openapi3filter.Options{IncludeResponseStatus: true},
	}
	if err := openapi3filter.ValidateResponse(context.Background(), in); err != nil {
		return Checked{}, fmt.Errorf("%s %s → %d %s: %w", req.Method, req.URL.Path, status, bytes.TrimSpace(body), err)
	}
	return Checked{Operation: route.Method + " " + route.Path, Code: errorCode(status, header, body)}, nil
}

// CheckRequest validates a request the node accepted against the
// operation it matches: path, query and header parameters and the body,
// so that what the document asks of clients is what nodes take.
// Credentials are not checked. req's body is read through GetBody.
func (s *Spec) CheckRequest(req *http.Request) error {
	route, params, err := s.findRoute(req)
	if err != nil {
		return fmt.Errorf("%s %s matches no operation: %w", req.Method, req.URL.Path, err)
	}
	r := req.Clone(context.Background())
	if req.GetBody != nil {
		if r.Body, err = req.GetBody(); err != nil {
			return err
		}
	}
	in := &openapi3filter.RequestValidationInput{Request: r, PathParams: params, Route: route,
		Options: &openapi3filter.Options{AuthenticationFunc: openapi3filter.NoopAuthenticationFunc}}
	if err := openapi3filter.ValidateRequest(context.Background(), in); err != nil {
		return fmt.Errorf("%s %s: %w", req.Method, req.URL, err)
	}
	return nil
}

// findRoute finds the operation req matches. A path of the document that
// is the request's path exactly is matched first, as OpenAPI matches
// concrete paths before templated ones; the router alone would not tell
// /ui from /ui/, since it ignores a trailing slash.
func (s *Spec) findRoute(req *http.Request) (*routers.Route, map[string]string, error) {
	item := s.doc.Paths.Value(req.URL.Path)
	if item == nil {
		return s.router.FindRoute(req)
	}
	op := item.GetOperation(req.Method)
	if op == nil {
		return nil, nil, &routers.RouteError{Reason: routers.ErrMethodNotAllowed.Error()}
	}
	return &routers.Route{Spec: s.doc, Path: req.URL.Path, PathItem: item, Method: req.Method, Operation: op}, map[string]string{}, nil
}

// CheckError validates an error answered before or outside routing against
// the document's error response for its status (the one of
// components/responses whose x-status is the status), and returns its code.
func (s *Spec) CheckError(status int, header http.Header, body []byte) (string, error) {
	var resp *openapi3.Response
	for _, r := range s.doc.Components.Responses {
		if r.Value != nil && fmt.Sprint(r.Value.Extensions["x-status"]) == fmt.Sprint(status) {
			resp = r.Value
		}
	}
	if resp == nil {
		return "", fmt.Errorf("the document has no error response for status %d", status)
	}
	mt := resp.Content.Get(header.Get("Content-Type"))
	if mt == nil {
		return "", fmt.Errorf("content type %q is not the error envelope's", header.Get("Content-Type"))
	}
	var v any
	if err := json.Unmarshal(body, &v); err != nil {
		return "", fmt.Errorf("body %q is not JSON: %w", body, err)
	}
	if err := mt.Schema.Value.VisitJSON(v, openapi3.EnableJSONSchema2020(), openapi3.VisitAsResponse()); err != nil {
		return "", fmt.Errorf("body %s: %w", bytes.TrimSpace(body), err)
	}
	return errorCode(status, header, body), nil
}

func errorCode(status int, header http.Header, body []byte) string {
	if status < 400 || !strings.HasPrefix(header.Get("Content-Type"), "application/json") {
		return ""
	}
	var e struct {
		Error struct {
			Code string `json:"code"`
		} `json:"error"`
	}
	if json.Unmarshal(body, &e) != nil {
		return ""
	}
	return e.Error.Code
}
