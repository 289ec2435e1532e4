// Package tfevent writes and reads TensorBoard event files: a sequence of
// records, each an Event protobuf (event.proto, encoded by
// google.golang.org/protobuf) framed as
//
//	uint64 length, little-endian
//	uint32 masked CRC-32C of those 8 bytes
//	length bytes of data
//	uint32 masked CRC-32C of the data
//
// the framing of TensorFlow's record files. The writer syncs the file after
// each Flush so that a killed process loses at most the record it was
// writing; the reader stops at a partial or corrupt record, as TensorBoard's
// does.
package tfevent

//go:generate protoc --go_out=. --go_opt=paths=source_relative event.proto

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"

	"google.golang.org/protobuf/proto"
)

// FileVersion is the file_version of the first event of every file: the
// version TensorBoard's readers expect of files with this framing.
const FileVersion = "brain.Event:2"

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// maskedCRC is the record format's CRC: CRC-32C rotated right by 15 bits plus
// a constant, so that a CRC of data holding CRCs is not itself trivial.
func maskedCRC(b []byte) uint32 {
	c := crc32.Checksum(b, castagnoli)
	return ((c >> 15) | (c << 17)) + 0xa282ead8
}

// AppendRecord appends the framed record of data to dst.
func AppendRecord(dst, data []byte) []byte {
	var hdr [8]byte
	binary.LittleEndian.PutUint64(hdr[:], uint64(len(data)))
	dst = append(dst, hdr[:]...)
	dst = binary.LittleEndian.AppendUint32(dst, maskedCRC(hdr[:]))
	dst = append(dst, data...)
	return binary.LittleEndian.AppendUint32(dst, maskedCRC(data))
}

// Writer writes events to one file. Write buffers; Flush writes the buffer
// and syncs the file.
type Writer struct {
	f   *os.File
	buf []byte
}

// Create creates path (refusing to replace an existing file) and writes the
// file_version event stamped wall.
func Create(path string, wall float64) (*Writer, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
	if err != nil {
		return nil, err
	}
	w := &Writer{f: f}
	w.Write(&Event{WallTime: wall, What: &Event_FileVersion{FileVersion: FileVersion}})
	if err := w.Flush(); err != nil {
		f.Close()
		return nil, err
	}
	return w, nil
}

// Write adds one event to the buffer.
func (w *Writer) Write(e *Event) {
	data, err := proto.Marshal(e)
	if err != nil {
		// Only invalid UTF-8 in a string field fails; tags are ours.
		panic(fmt.Sprintf("tfevent: marshal: %v", err))
	}
	w.buf = AppendRecord(w.buf, data)
}

// Flush writes the buffered records in one write and syncs the file.
func (w *Writer) Flush() error {
	if len(w.buf) == 0 {
		return nil
	}
	_, err := w.f.Write(w.buf)
	w.buf = w.buf[:0]
	if err != nil {
		return err
	}
	return w.f.Sync()
}

// Close flushes and closes the file.
func (w *Writer) Close() error {
	err := w.Flush()
	if cerr := w.f.Close(); err == nil {
		err = cerr
	}
	return err
}

// ErrTruncated is returned by Read for a record cut short or failing its CRC:
// the end of what a killed writer left.
var ErrTruncated = errors.New("tfevent: partial or corrupt record")

// Read decodes the records of r until EOF. It returns the events before the
// first partial or corrupt record together with ErrTruncated, and the byte
// length of those whole records.
func Read(r io.Reader) (events []*Event, good int64, err error) {
	br := bufio.NewReader(r)
	for {
		var hdr [12]byte
		n, err := io.ReadFull(br, hdr[:])
		if err == io.EOF {
			return events, good, nil
		}
		if err != nil || binary.LittleEndian.Uint32(hdr[8:]) != maskedCRC(hdr[:8]) {
			return events, good, ErrTruncated
		}
		size := binary.LittleEndian.Uint64(hdr[:8])
		if size > 1<<30 {
			return events, good, ErrTruncated
		}
		body := make([]byte, size+4)
		if _, err := io.ReadFull(br, body); err != nil {
			return events, good, ErrTruncated
		}
		data := body[:size]
		if binary.LittleEndian.Uint32(body[size:]) != maskedCRC(data) {
			return events, good, ErrTruncated
		}
		e := new(Event)
		if err := proto.Unmarshal(data, e); err != nil {
			return events, good, fmt.Errorf("tfevent: record at byte %d: %w", good, err)
		}
		events = append(events, e)
		good += int64(n) + int64(size) + 4
	}
}

// ReadFile reads the events of one file (see Read).
func ReadFile(path string) ([]*Event, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	evs, _, err := Read(f)
	return evs, err
}
