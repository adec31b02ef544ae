package server

import (
	"bytes"
	"strings"
	"testing"

	berryv1 "github.com/berry-gateway/berry/pkg/api/berry/v1"
	"google.golang.org/grpc/codes"
)

// A sent chunk is never written to again: gRPC may still hold it after Send.
func TestChunkWriterNeverReusesASentChunk(t *testing.T) {
	var sent [][]byte
	w := &chunkWriter{send: func(b []byte) error { sent = append(sent, b); return nil }}
	var want [][]byte
	for i := range 3 {
		chunk := bytes.Repeat([]byte{byte('a' + i)}, chunkSize)
		want = append(want, chunk)
		// Two writes per chunk, so that a write straddles no boundary by luck.
		if _, err := w.Write(chunk[:chunkSize/3]); err != nil {
			t.Fatal(err)
		}
		if _, err := w.Write(chunk[chunkSize/3:]); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := w.Write([]byte("tail")); err != nil {
		t.Fatal(err)
	}
	if err := w.flush(); err != nil {
		t.Fatal(err)
	}
	want = append(want, []byte("tail"))
	if len(sent) != len(want) {
		t.Fatalf("%d chunks sent, want %d", len(sent), len(want))
	}
	for i := range want {
		if !bytes.Equal(sent[i], want[i]) {
			t.Errorf("chunk %d changed after it was sent: starts %q, want %q", i, sent[i][:min(4, len(sent[i]))], want[i][:min(4, len(want[i]))])
		}
	}
}

// A write the control plane fails to make (here: its store is gone, as on a broken
// disk) is logged as an error naming the change; a refused one is logged by its code.
func TestFailedWriteIsLogged(t *testing.T) {
	h := start(t)
	h.seed(t)
	c := h.admin(t, adminTok)
	_, err := c.DeleteModel(ctxT(t), &berryv1.DeleteModelRequest{Id: "ghost"})
	wantCode(t, "delete a missing model", err, codes.NotFound)
	if err := h.srv.admin.store.Close(); err != nil {
		t.Fatal(err)
	}
	_, err = c.PutModel(ctxT(t), &berryv1.PutModelRequest{Model: &berryv1.Model{Id: "m2", Name: "m2"}})
	wantCode(t, "write to a closed store", err, codes.Internal)
	logs := h.logs.String()
	for _, want := range []string{
		`level=INFO msg="config write refused" change="delete model ghost" author=admin code=NotFound`,
		`level=ERROR msg="config write failed" change="put model m2" author=admin err="database not open"`,
	} {
		if !strings.Contains(logs, want) {
			t.Errorf("logs lack %s:\n%s", want, logs)
		}
	}
	for _, secret := range []string{adminTok, providerKey, userToken} {
		if strings.Contains(logs, secret) {
			t.Errorf("logs contain secret %q", secret)
		}
	}
}
