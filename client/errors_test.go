package client

import (
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"
)

func TestAnswersWithoutTheErrorModelStillDecodeToReadableErrors(t *testing.T) {
	e := DecodeError(502, nil, []byte("<html>bad gateway</html>"), "http://x")
	if e.Code != "http_502" || e.Message != "<html>bad gateway</html>" {
		t.Errorf("non-JSON error decoded as %+v", e)
	}
	if e := DecodeError(503, nil, nil, "http://x"); e.Message != "Service Unavailable" {
		t.Errorf("empty error decoded as %+v", e)
	}
	long := DecodeError(500, nil, []byte(strings.Repeat("x", 1000)), "http://x")
	if len(long.Message) > maxMessageInError+len("…") {
		t.Errorf("a long body is kept whole: %d bytes", len(long.Message))
	}
	h := http.Header{"Retry-After": {"3"}, "Etag": {`"42"`}}
	vm := DecodeError(412, h, []byte(`{"error":{"code":"version_mismatch","message":"m"}}`), "http://x")
	if !errors.Is(vm, ErrVersionMismatch) || vm.Version != 42 || vm.RetryAfter != 3*time.Second {
		t.Errorf("412 decoded as %+v", vm)
	}
}

func TestTransportFailureTellsNoAnswerFromAnAnswer(t *testing.T) {
	cause := errors.New("connection reset")
	if got, failed := TransportFailure(&Error{Code: CodeOutcomeUnknown, Err: cause}); !failed || got != cause {
		t.Errorf("a broken connection: %v %v, want its cause", got, failed)
	}
	if _, failed := TransportFailure(&Error{Status: 503, Code: CodeOutcomeUnknown}); failed {
		t.Error("a 503 answer counted as no answer")
	}
	if _, failed := TransportFailure(nil); failed {
		t.Error("success counted as no answer")
	}
}
