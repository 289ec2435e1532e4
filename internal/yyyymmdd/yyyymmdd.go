// Package yyyymmdd formats the panel's dates, YYYYMMDD integers, as
// YYYY-MM-DD: the one formatting of a date that loader's and backtest's
// output share.
package yyyymmdd

import "fmt"

// Format writes d (YYYYMMDD) as "YYYY-MM-DD", zero-padded.
func Format(d int32) string {
	return fmt.Sprintf("%04d-%02d-%02d", d/10000, d/100%100, d%100)
}
