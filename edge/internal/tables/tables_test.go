package tables

import (
	"testing"

	berryv1 "github.com/berry-gateway/berry/pkg/api/berry/v1"
	"github.com/berry-gateway/berry/pkg/config"
)

func TestCurrent(t *testing.T) {
	var c Current
	if c.Table() != nil || c.Applied() != 0 || c.Lineage() != "" || c.Connected() {
		t.Fatal("zero Current is not empty")
	}
	good := &berryv1.Config{}
	config.Normalize(good)
	if err := c.Apply(&berryv1.Snapshot{Version: 3, Lineage: "a", Config: good}); err != nil {
		t.Fatal(err)
	}
	// An invalid snapshot is refused and the served one stays.
	if err := c.Apply(&berryv1.Snapshot{Version: 4, Lineage: "b", Config: &berryv1.Config{}}); err == nil {
		t.Fatal("invalid snapshot applied")
	}
	if c.Applied() != 3 || c.Lineage() != "a" || c.Table() == nil {
		t.Fatalf("serving %d/%q", c.Applied(), c.Lineage())
	}
	c.SetConnected(true)
	if !c.Connected() {
		t.Fatal("not connected after SetConnected(true)")
	}
}
