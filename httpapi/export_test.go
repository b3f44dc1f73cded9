package httpapi

// RoutesForTest lists the routes registered in echo as "METHOD /path" with
// echo's :param placeholders, for the OpenAPI contract test.
func (s *Server) RoutesForTest() []string {
	var out []string
	for _, r := range s.echo.Routes() {
		out = append(out, r.Method+" "+r.Path)
	}
	return out
}
