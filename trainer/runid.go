package trainer

import (
	"crypto/rand"
	"encoding/hex"
	"time"
)

// newRunID names a run: its UTC start time and 4 random bytes, e.g.
// "20261130T074512Z-3f9a1c07". Two runs started in the same second still
// differ; the time makes the IDs of one machine sort by start.
func newRunID(now time.Time) string {
	var b [4]byte
	if _, err := rand.Read(b[:]); err != nil {
		// crypto/rand does not fail on supported platforms; keep the time.
		return now.UTC().Format("20060102T150405Z")
	}
	return now.UTC().Format("20060102T150405Z") + "-" + hex.EncodeToString(b[:])
}
