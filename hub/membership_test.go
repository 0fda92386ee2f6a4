package hub

import (
	"fmt"
	"testing"
)

// TestStaticMembershipSplitsClusters checks that replicas given the same
// peer list, each its own address among them or not, agree on one owner
// per cluster, that the clusters spread over every replica, and that
// removing a replica moves only the clusters it owned.
func TestStaticMembershipSplitsClusters(t *testing.T) {
	addrs := []string{"hub-0:10901", "hub-1:10901", "hub-2:10901"}
	members := []*StaticMembership{
		NewStaticMembership(addrs[0], addrs),     // its own address listed
		NewStaticMembership(addrs[1], addrs[2:]), // only another's
		NewStaticMembership(addrs[2], addrs),
	}
	if peers, _ := members[1].Peers(); len(peers) != 1 {
		t.Fatalf("replica 1's peers = %v, want the one it was given", peers)
	}
	members[1] = NewStaticMembership(addrs[1], []string{addrs[2], addrs[0], addrs[1]}) // another order
	owner := map[string]int{}
	per := make([]int, len(members))
	for c := range 3000 {
		cluster := fmt.Sprintf("cluster-%d", c)
		owners := 0
		for i, m := range members {
			if m.Owns(cluster) {
				owners++
				owner[cluster] = i
				per[i]++
			}
		}
		if owners != 1 {
			t.Fatalf("%s has %d owners, want 1", cluster, owners)
		}
	}
	for i, n := range per {
		if n < 800 || n > 1200 {
			t.Errorf("replica %d owns %d of 3000 clusters, want about a third", i, n)
		}
	}
	// Without hub-2, its clusters move and the others' stay.
	two := []*StaticMembership{NewStaticMembership(addrs[0], addrs[:2]), NewStaticMembership(addrs[1], addrs[:2])}
	for cluster, was := range owner {
		for i, m := range two {
			if m.Owns(cluster) && was != 2 && was != i {
				t.Fatalf("%s moved from replica %d to %d when replica 2 left", cluster, was, i)
			}
		}
	}
}
