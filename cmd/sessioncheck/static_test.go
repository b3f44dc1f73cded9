package main

import (
	"net"
	"testing"

	"github.com/sessiond/sessiond/internal/check"
	"github.com/sessiond/sessiond/internal/testnode"
)

func TestAStaticTargetNamesEachNodeAsItNamesItself(t *testing.T) {
	n := testnode.Start(t, testnode.Options{})[0]
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := "http://" + l.Addr().String()
	l.Close()
	target, err := newStaticTarget(n.URL+","+dead, check.Credentials{})
	if err != nil {
		t.Fatal(err)
	}
	got := target.Nodes()
	if len(got) != 2 || got[0] != (check.Node{Name: "n1", URL: n.URL}) || got[1] != (check.Node{Name: dead, URL: dead}) {
		t.Fatalf("nodes = %+v; want n1 by its own name and the dead address standing for itself", got)
	}
}
