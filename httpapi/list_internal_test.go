package httpapi

import (
	"slices"
	"strings"
	"testing"

	"github.com/sessiond/sessiond/cluster"
	"github.com/sessiond/sessiond/fsm"
)

func page(more bool, ids ...string) cluster.SessionPage {
	p := cluster.SessionPage{Sessions: []fsm.SessionInfo{}, More: more}
	for _, id := range ids {
		p.Sessions = append(p.Sessions, fsm.SessionInfo{ID: id})
	}
	return p
}

func TestMergePagesTakesTheSmallestAndKnowsWhenItIsDone(t *testing.T) {
	for _, tc := range []struct {
		name  string
		pages []cluster.SessionPage
		limit int
		want  string // ids, space-separated
		next  string
	}{
		{"empty", []cluster.SessionPage{page(false), page(false)}, 3, "", ""},
		{"no shards", nil, 3, "", ""},
		{"interleaved, complete", []cluster.SessionPage{page(false, "a", "d"), page(false, "b", "c", "e")}, 10, "a b c d e", ""},
		{"exactly the limit, complete", []cluster.SessionPage{page(false, "a", "d"), page(false, "b")}, 3, "a b d", ""},
		{"left over", []cluster.SessionPage{page(false, "a", "d"), page(false, "b", "c")}, 3, "a b c", "c"},
		// A shard that filled its page may hold more: the listing goes on
		// although every session received was returned.
		{"a shard has more", []cluster.SessionPage{page(true, "a", "b", "c"), page(false)}, 3, "a b c", "c"},
		{"a shard has more after a shorter page", []cluster.SessionPage{page(false, "a"), page(true, "b")}, 3, "a b", "b"},
		{"one shard", []cluster.SessionPage{page(false, "x", "y")}, 1, "x", "x"},
	} {
		got := mergePages(tc.pages, tc.limit)
		var ids []string
		for _, s := range got.Sessions {
			ids = append(ids, s.ID)
		}
		if strings.Join(ids, " ") != tc.want || got.Next != tc.next || got.Sessions == nil {
			t.Errorf("%s: got %v next %q, want [%s] next %q", tc.name, ids, got.Next, tc.want, tc.next)
		}
		if !slices.IsSorted(ids) {
			t.Errorf("%s: out of order: %v", tc.name, ids)
		}
	}
}
