package baseurl

import (
	"strings"
	"testing"
)

func TestParseListAcceptsWhatOperatorsType(t *testing.T) {
	got, err := ParseList("127.0.0.1:8081, http://node2:8082/ ,:8083,,https://lb.example/sessiond/,localhost:9000,[::1]:8080")
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"http://127.0.0.1:8081", "http://node2:8082", "http://127.0.0.1:8083",
		"https://lb.example/sessiond", "http://localhost:9000", "http://[::1]:8080"}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("ParseList = %q, want %q", got, want)
	}
}

func TestParseListRejectsWhatIsNotABaseURL(t *testing.T) {
	for in, want := range map[string]string{
		"":                         "no address",
		" , ":                      "no address",
		"ftp://host:21":            "scheme",
		"http://":                  "no host",
		"http://h:1/?x=1":          "query",
		"http://user:pw@h:1":       "user",
		"host:99999":               "bad port",
		"host:abc":                 "host:abc",
		"127.0.0.1:8080,ftp://x:1": "scheme",
	} {
		if _, err := ParseList(in); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("ParseList(%q) = %v, want an error containing %q", in, err, want)
		}
	}
}
