package cluster

import "testing"

func founder(id string, inc uint64) Member {
	return Member{Meta: Meta{NodeID: id, Incarnation: inc}}
}

// TestTwoSlowFoundersFindTheirFoundingSet: with one founder formed and two
// still unformed, each slow founder must find the set {formed, itself, the
// other slow one} rather than wait for ever (found by the compose suite).
func TestTwoSlowFoundersFindTheirFoundingSet(t *testing.T) {
	a, b, c, d := founder("a", 1), founder("b", 2), founder("c", 3), founder("d", 4)
	id := clusterIDOf([]Member{a, b, c})
	got := foundingSet([]Member{c, a}, []Member{d, b}, 3, id)
	if got == nil || clusterIDOf(got) != id {
		t.Fatalf("slow founder a found %v, want the set a, b, c", memberIDs(got))
	}
	if got := foundingSet([]Member{c, d}, []Member{a, b}, 3, id); got != nil {
		t.Fatalf("newcomer d claimed to be a founder: %v", memberIDs(got))
	}
}

// TestAWipedFounderIsNotItsFormerSelf: a founder that lost its data dir comes
// back with a new incarnation, so it no longer hashes to the cluster id and
// must join rather than bootstrap again.
func TestAWipedFounderIsNotItsFormerSelf(t *testing.T) {
	a, b, c := founder("a", 1), founder("b", 2), founder("c", 3)
	id := clusterIDOf([]Member{a, b, c})
	wiped := founder("c", 99)
	if got := foundingSet([]Member{a, b, wiped}, nil, 3, id); got != nil {
		t.Fatalf("wiped founder matched the cluster id: %v", memberIDs(got))
	}
}

// TestPlacementIsStableAndMovesOnlyWhatItMust checks rendezvous placement:
// deterministic, R distinct nodes, and adding a node only ever swaps that
// node in.
func TestPlacementIsStableAndMovesOnlyWhatItMust(t *testing.T) {
	nodes := []string{"n1", "n2", "n3"}
	for s := uint32(0); s < 64; s++ {
		p := Place(s, nodes, 3)
		if len(p) != 3 || p[0] == p[1] || p[1] == p[2] || p[0] == p[2] {
			t.Fatalf("shard %d placed on %v", s, p)
		}
		q := Place(s, append([]string{"n4"}, nodes...), 3)
		moved := 0
		for _, id := range q {
			found := false
			for _, old := range p {
				found = found || old == id
			}
			if !found {
				if id != "n4" {
					t.Fatalf("shard %d: adding n4 moved a replica to %s", s, id)
				}
				moved++
			}
		}
		if moved > 1 {
			t.Fatalf("shard %d: adding one node moved %d replicas", s, moved)
		}
	}
}
