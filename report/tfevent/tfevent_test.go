package tfevent

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"google.golang.org/protobuf/proto"
)

// TestRecordHeader: the framing of a 24-byte record (the size of a
// file_version event with its wall time) starts with the 12 bytes every
// TensorFlow-written event file starts with: the length little-endian and
// its masked CRC-32C, 0x224b7fa3 (what tensorboard.compat's masked_crc32c
// gives for struct.pack('<Q', 24)).
func TestRecordHeader(t *testing.T) {
	got := AppendRecord(nil, make([]byte, 24))
	want := []byte{0x18, 0, 0, 0, 0, 0, 0, 0, 0xa3, 0x7f, 0x4b, 0x22}
	if !bytes.Equal(got[:12], want) {
		t.Errorf("header % x, want % x", got[:12], want)
	}
	if len(got) != 12+24+4 {
		t.Errorf("record of 24 bytes framed in %d bytes, want 40", len(got))
	}
}

func scalar(step int64, tag string, v float32) *Event {
	return &Event{WallTime: 1.5, Step: step, What: &Event_Summary{Summary: &Summary{Value: []*Summary_Value{
		{Tag: tag, Value: &Summary_Value_SimpleValue{SimpleValue: v}}}}}}
}

// TestWriteReadAndCut: what the writer wrote reads back equal; a file cut
// anywhere inside its last record reads back every record before it, with
// ErrTruncated, and a byte flipped in the last record's data fails its CRC.
func TestWriteReadAndCut(t *testing.T) {
	path := filepath.Join(t.TempDir(), "events.out.tfevents.1.test")
	w, err := Create(path, 1000.25)
	if err != nil {
		t.Fatal(err)
	}
	want := []*Event{scalar(1, "loss/train", 2.5), scalar(1, "loss/validation", 2.25), scalar(2, "loss/train", 2.125)}
	for _, e := range want {
		w.Write(e)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := Create(path, 0); err == nil {
		t.Error("Create replaced an existing file")
	}
	got, err := ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 4 || got[0].GetFileVersion() != FileVersion || got[0].WallTime != 1000.25 {
		t.Fatalf("read %d events, first %v; want the file_version event and 3 more", len(got), got[0])
	}
	for i, e := range want {
		if !proto.Equal(got[i+1], e) {
			t.Errorf("event %d: %v, want %v", i+1, got[i+1], e)
		}
	}
	raw, _ := os.ReadFile(path)
	last, _ := proto.Marshal(want[2])
	start := len(raw) - len(AppendRecord(nil, last))
	for cut := start + 1; cut < len(raw); cut++ {
		evs, good, err := Read(bytes.NewReader(raw[:cut]))
		if !errors.Is(err, ErrTruncated) || len(evs) != 3 || good != int64(start) {
			t.Fatalf("cut at %d of %d: %d events, %d good bytes, err %v; want 3, %d, ErrTruncated", cut, len(raw), len(evs), good, err, start)
		}
	}
	bad := bytes.Clone(raw)
	bad[len(bad)-6] ^= 1
	if evs, _, err := Read(bytes.NewReader(bad)); !errors.Is(err, ErrTruncated) || len(evs) != 3 {
		t.Errorf("flipped bit in the last record: %d events, err %v; want 3, ErrTruncated", len(evs), err)
	}
}
