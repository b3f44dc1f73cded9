package httpapi_test

import (
	"encoding/json"
	"net/http"
	"testing"
)

// Alarms are set by time or delay, listed by due time, replaced by name and
// deleted; bad requests are 400, a missing session or alarm 404.
func TestAlarmsAreSetListedAndDeleted(t *testing.T) {
	n := startNode(t)
	n.appendMsg("al", "m1", "hi")
	wantStatus(t, n.do(http.MethodPut, sessionPath("al", "/alarms/late"), `{"at":4102444800000,"payload":{"n":1}}`), http.StatusOK)
	wantStatus(t, n.do(http.MethodPut, sessionPath("al", "/alarms/soon"), `{"in":"1h"}`), http.StatusOK)
	wantStatus(t, n.do(http.MethodPut, sessionPath("al", "/alarms/late"), `{"at":4102444800001}`), http.StatusOK) // replaces
	var list struct {
		Alarms []struct {
			Name    string
			At      int64
			Payload json.RawMessage
		}
		Fired []any
	}
	decode(t, n.get(sessionPath("al", "/alarms")), &list)
	if len(list.Alarms) != 2 || list.Alarms[0].Name != "soon" || list.Alarms[1].At != 4102444800001 || list.Alarms[1].Payload != nil || list.Fired == nil {
		t.Fatalf("alarms: %+v", list)
	}
	wantStatus(t, n.do(http.MethodDelete, sessionPath("al", "/alarms/soon"), nil), http.StatusNoContent)
	wantError(t, n.do(http.MethodDelete, sessionPath("al", "/alarms/soon"), nil), http.StatusNotFound, "alarm_not_found")
	for _, bad := range []string{`{}`, `{"in":"x"}`, `{"in":"-1s"}`, `{"at":1,"in":"1s"}`, `{"when":1}`} {
		wantError(t, n.do(http.MethodPut, sessionPath("al", "/alarms/x"), bad), http.StatusBadRequest, "invalid_alarm")
	}
	wantError(t, n.do(http.MethodPut, sessionPath("al", "/alarms/x"), `{"at":1,"payload":nope}`), http.StatusBadRequest, "invalid_json")
	wantError(t, n.do(http.MethodPut, sessionPath("al", "/alarms/bad:name"), `{"in":"1h"}`), http.StatusBadRequest, "invalid_alarm")
	wantError(t, n.do(http.MethodPut, sessionPath("nobody", "/alarms/a"), `{"in":"1h"}`), http.StatusNotFound, "session_not_found")
}
