package fsm

import (
	"fmt"
	"testing"
)

// An alarm fires exactly once: a second fire of the same setting, or a
// fire of an earlier setting of a name set again, changes nothing, and an
// alarm is not fired before its time.
func TestAnAlarmFiresOnceForEachSetting(t *testing.T) {
	f := New(DefaultLimits)
	applyLog(t, f, 1, appendCmd("s", msg("m", "user", "x")))
	set := applyLog(t, f, 2, Command{Op: OpSetAlarm, Session: "s", Name: "remind", Due: 5_000, Value: []byte(`{"k": 1}`)})
	if set.Status != StatusOK {
		t.Fatalf("set: %v %s", set.Status, set.Detail)
	}
	if r := applyLog(t, f, 3, Command{Op: OpFireAlarm, Session: "s", Name: "remind", Set: 2, At: 4_999}); r.Changed {
		t.Fatal("an alarm fired before its time")
	}
	if due := f.DueAlarms(5_000, 10); len(due) != 1 || due[0] != (DueAlarm{"s", "remind", 2}) {
		t.Fatalf("DueAlarms = %v", due)
	}
	if r := applyLog(t, f, 4, Command{Op: OpFireAlarm, Session: "s", Name: "remind", Set: 2, At: 5_000}); !r.Changed || r.Version != 4 {
		t.Fatalf("the due fire: %+v", r)
	}
	if r := applyLog(t, f, 5, Command{Op: OpFireAlarm, Session: "s", Name: "remind", Set: 2, At: 6_000}); r.Changed {
		t.Fatal("an alarm fired twice")
	}
	s, _ := f.Get("s")
	if len(s.Alarms()) != 0 || len(s.FiredAlarms()) != 1 || s.FiredAlarms()[0].Version != 4 || string(s.FiredAlarms()[0].Payload) != `{"k":1}` {
		t.Fatalf("after the fire: pending %v, fired %v", s.Alarms(), s.FiredAlarms())
	}
	if u := f.UndeliveredAlarms(10); len(u) != 1 || u[0].Name != "remind" {
		t.Fatalf("UndeliveredAlarms = %v", u)
	}
	applyLog(t, f, 6, Command{Op: OpAlarmDelivered, Session: "s", Name: "remind", Set: 4})
	if u := f.UndeliveredAlarms(10); len(u) != 0 {
		t.Fatalf("a delivered alarm is still undelivered: %v", u)
	}
	// Set again: a fire of the old setting does nothing, one of the new fires.
	applyLog(t, f, 7, Command{Op: OpSetAlarm, Session: "s", Name: "remind", Due: 1})
	if r := applyLog(t, f, 8, Command{Op: OpFireAlarm, Session: "s", Name: "remind", Set: 2, At: 9_000}); r.Changed {
		t.Fatal("a fire of an earlier setting fired the new one")
	}
	if r := applyLog(t, f, 9, Command{Op: OpFireAlarm, Session: "s", Name: "remind", Set: 7, At: 9_000}); !r.Changed {
		t.Fatal("the new setting did not fire")
	}
}

// A session remembers its most recent MaxFiredAlarms fires and the version
// of the last one it forgot.
func TestFiredAlarmsAreBounded(t *testing.T) {
	f := New(DefaultLimits)
	applyLog(t, f, 1, appendCmd("s", msg("m", "user", "x")))
	idx := uint64(2)
	var fires []uint64
	for i := range MaxFiredAlarms + 5 {
		name := fmt.Sprintf("a%d", i)
		applyLog(t, f, idx, Command{Op: OpSetAlarm, Session: "s", Name: name, Due: 1})
		applyLog(t, f, idx+1, Command{Op: OpFireAlarm, Session: "s", Name: name, Set: idx, At: 2})
		fires = append(fires, idx+1)
		idx += 2
	}
	s, _ := f.Get("s")
	if len(s.FiredAlarms()) != MaxFiredAlarms || s.FiredForgottenUpTo() != fires[4] || s.FiredAlarms()[0].Version != fires[5] {
		t.Fatalf("%d fired kept, forgotten up to %d (fires %v)", len(s.FiredAlarms()), s.FiredForgottenUpTo(), fires[:6])
	}
	if r := applyLog(t, f, idx, Command{Op: OpSetAlarm, Session: "s", Name: "bad name!", Due: 1}); r.Status != StatusInvalid {
		t.Fatalf("an invalid alarm name: %v", r.Status)
	}
	if r := applyLog(t, f, idx+1, Command{Op: OpSetAlarm, Session: "nobody", Name: "a", Due: 1}); r.Status != StatusNotFound {
		t.Fatalf("an alarm for a missing session: %v", r.Status)
	}
}
