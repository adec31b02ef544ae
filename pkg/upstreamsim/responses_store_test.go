package upstreamsim

import (
	"strconv"
	"testing"
)

func TestResponseStoreBounds(t *testing.T) {
	var st responseStore
	put := func(id string, inputBytes int) {
		st.put(&storedResponse{resp: respObject{ID: id}, size: inputBytes})
	}
	for i := range maxStoredResponses + 1 {
		put(strconv.Itoa(i), 1)
	}
	if _, _, ok := st.context("0"); ok {
		t.Error("the oldest response outlived the count bound")
	}
	if _, _, ok := st.context("1"); !ok || len(st.byID) != maxStoredResponses || st.bytes != maxStoredResponses {
		t.Errorf("stored %d responses, %d bytes", len(st.byID), st.bytes)
	}
	// Deleted ids don't make the order list grow without bound.
	for i := range 3 * maxStoredResponses {
		id := "d" + strconv.Itoa(i)
		put(id, 1)
		st.remove(id)
	}
	if len(st.order) > 2*maxStoredResponses+1 {
		t.Errorf("order holds %d ids", len(st.order))
	}

	put("big1", maxStoredBytes/2+1)
	put("big2", maxStoredBytes/2+1)
	if _, _, ok := st.context("big1"); ok {
		t.Error("the byte bound evicted nothing")
	}
	if _, _, ok := st.context("big2"); !ok || st.bytes > maxStoredBytes {
		t.Errorf("after big inputs: %d bytes", st.bytes)
	}
	// A single response over the budget is still kept, so it can be continued.
	put("huge", maxStoredBytes+1)
	if _, _, ok := st.context("huge"); !ok || len(st.byID) != 1 {
		t.Errorf("huge response: %d stored", len(st.byID))
	}
}
