package fsm

import (
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
)

func listIDs(page []SessionInfo) []string {
	ids := make([]string, len(page))
	for i, s := range page {
		ids[i] = s.ID
	}
	return ids
}

func TestListOrdersFiltersAndPages(t *testing.T) {
	f := New(DefaultLimits)
	// Ids in an order that is neither insertion order nor hash order, with
	// prefixes that nest ("a", "a-1", "a-10") and bytes below and above
	// letters ('-' < '0' < 'A' < '_' < 'a').
	ids := []string{"b", "a-10", "a", "a-1", "a-2", "A", "_x", "0", "a:1", "a-1-x", "c@d", "bb"}
	var cmds []Command
	for _, id := range ids {
		cmds = append(cmds, appendCmd(id, msg("m1", "user", "hello")))
	}
	cmds = append(cmds, appendCmd("a-2", msg("m2", "user", "again")), mergeCmd("b", "k", `"v"`))
	applySetup(t, f, cmds)
	sorted := slices.Sorted(slices.Values(ids))

	page, more := f.List("", "", 100)
	if got := listIDs(page); !slices.Equal(got, sorted) || more {
		t.Fatalf("List all = %v (more %v), want %v", got, more, sorted)
	}

	for _, tc := range []struct {
		prefix, after string
		limit         int
		want          []string
		more          bool
	}{
		{"", "", 3, []string{"0", "A", "_x"}, true},
		{"", "_x", 3, []string{"a", "a-1", "a-1-x"}, true},
		{"", "c@d", 3, nil, false},
		{"", "zzz", 3, nil, false},
		{"", "a-1-x", 100, []string{"a-10", "a-2", "a:1", "b", "bb", "c@d"}, false},
		{"a-1", "", 100, []string{"a-1", "a-1-x", "a-10"}, false},
		{"a-1", "a-1", 1, []string{"a-1-x"}, true},
		{"a-1", "a-1-x", 1, []string{"a-10"}, false},
		{"a", "", 2, []string{"a", "a-1"}, true},
		{"b", "", 100, []string{"b", "bb"}, false},
		{"b", "0", 100, []string{"b", "bb"}, false}, // a cursor before the prefix
		{"b", "c", 100, nil, false},                 // a cursor past the prefix
		{"nope", "", 100, nil, false},
		{"", "", 0, nil, false},
		{"", "", len(ids), sorted, false},
		{"", "", len(ids) - 1, sorted[:len(ids)-1], true},
	} {
		page, more := f.List(tc.prefix, tc.after, tc.limit)
		if got := listIDs(page); !slices.Equal(got, tc.want) || more != tc.more {
			t.Errorf("List(%q, %q, %d) = %v more %v, want %v more %v", tc.prefix, tc.after, tc.limit, got, more, tc.want, tc.more)
		}
	}

	// Each item describes its session.
	page, _ = f.List("a-2", "", 1)
	s, _ := f.Get("a-2")
	want := SessionInfo{ID: "a-2", CreatedAt: s.CreatedAt, UpdatedAt: s.UpdatedAt, MessageCount: 2, SizeBytes: s.Size(), Version: s.Version}
	if len(page) != 1 || page[0] != want {
		t.Fatalf("List(a-2) = %+v, want %+v", page, want)
	}
	if s.CreatedAt == s.UpdatedAt || s.Version == 0 || s.Size() <= 0 {
		t.Fatalf("the session does not tell its fields apart: %+v", want)
	}

	// Paging with the last id as the cursor visits every session once.
	for limit := 1; limit <= len(ids)+1; limit++ {
		var all []string
		after := ""
		for {
			page, more := f.List("", after, limit)
			all = append(all, listIDs(page)...)
			if !more {
				break
			}
			after = page[len(page)-1].ID
		}
		if !slices.Equal(all, sorted) {
			t.Fatalf("paging by %d = %v, want %v", limit, all, sorted)
		}
	}

	// Deleted sessions are gone from the listing.
	applySetup2(t, f, uint64(len(cmds)+1), deleteCmd("a"), deleteCmd("bb"))
	page, _ = f.List("", "", 100)
	if got := listIDs(page); slices.Contains(got, "a") || slices.Contains(got, "bb") || len(got) != len(ids)-2 {
		t.Fatalf("after deletes: %v", got)
	}
}

// applySetup2 applies cmds from index on; each must succeed.
func applySetup2(t *testing.T, f *FSM, index uint64, cmds ...Command) {
	t.Helper()
	for i := range cmds {
		c := cmds[i]
		c.At = atOf(index)
		if r := f.ApplyCommand(index, &c); r.Status != StatusOK {
			t.Fatalf("command %v: %v %s", c.Op, r.Status, r.Detail)
		}
		index++
	}
}

// List runs while Apply creates and deletes other sessions, and while
// snapshots freeze buckets: sessions that exist throughout are listed
// exactly once, in order, on every pass (run with -race).
func TestListRunsConcurrentlyWithApply(t *testing.T) {
	f := New(DefaultLimits)
	var cmds []Command
	for i := 0; i < 2000; i++ {
		cmds = append(cmds, appendCmd(fmt.Sprintf("keep-%05d", i), msg("m", "user", "x")))
	}
	applySetup(t, f, cmds)
	index := uint64(len(cmds))

	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { // the apply goroutine
		defer wg.Done()
		for i := 0; ; i++ {
			select {
			case <-done:
				return
			default:
			}
			index++
			id := fmt.Sprintf("keep-%05d-churn-%d", (i*7919)%2000, i%3)
			c := appendCmd(id, msg("m", "user", "x"))
			if i%2 == 1 {
				c = deleteCmd(fmt.Sprintf("keep-%05d-churn-%d", ((i-1)*7919)%2000, (i-1)%3))
			}
			c.At = atOf(index)
			f.ApplyCommand(index, &c)
			if i%100 == 0 {
				if _, err := f.Snapshot(); err != nil {
					t.Error(err)
					return
				}
			}
		}
	}()
	for pass := 0; pass < 5; pass++ {
		var got []string
		after := ""
		for {
			page, more := f.List("keep-", after, 137)
			for _, s := range page {
				if !strings.Contains(s.ID, "churn") {
					got = append(got, s.ID)
				}
			}
			if !more {
				break
			}
			after = page[len(page)-1].ID
		}
		if len(got) != 2000 || !slices.IsSorted(got) {
			t.Fatalf("pass %d listed %d sessions (sorted %v)", pass, len(got), slices.IsSorted(got))
		}
		for i, id := range got {
			if want := fmt.Sprintf("keep-%05d", i); id != want {
				t.Fatalf("pass %d: item %d is %s, want %s", pass, i, id, want)
			}
		}
	}
	close(done)
	wg.Wait()
}

// Paging through 100 000 sessions of one FSM; reports sessions listed per
// second for the default page size and the largest.
func BenchmarkListPaging100k(b *testing.B) {
	f := New(DefaultLimits)
	const n = 100_000
	for i := 0; i < n; i++ {
		c := Command{Op: OpAppendMessages, Session: fmt.Sprintf("session-%06d", (i*7919)%n), At: int64(i + 1),
			Messages: []NewMessage{{ID: "m", Role: "user", Content: "hello"}}}
		if r := f.ApplyCommand(uint64(i+1), &c); r.Status != StatusOK {
			b.Fatal(r.Detail)
		}
	}
	for _, limit := range []int{100, 1000} {
		b.Run(fmt.Sprintf("limit=%d", limit), func(b *testing.B) {
			listed := 0
			for b.Loop() {
				after := ""
				for {
					page, more := f.List("", after, limit)
					listed += len(page)
					if !more {
						break
					}
					after = page[len(page)-1].ID
				}
			}
			if listed != n*b.N {
				b.Fatalf("listed %d, want %d", listed, n*b.N)
			}
			b.ReportMetric(float64(listed)/b.Elapsed().Seconds(), "sessions/s")
		})
	}
}
