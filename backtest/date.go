package backtest

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/satrain/satrain/internal/yyyymmdd"
)

// Date is a calendar day held as the integer YYYYMMDD, like the panel's
// /dates. satrain's outputs (report.json, the predict CSV, tables, plots)
// write dates in one format, ISO 8601 "YYYY-MM-DD"; ParseDate and
// UnmarshalJSON accept "YYYY-MM-DD", "YYYYMMDD" and the JSON number
// YYYYMMDD, so older reports still read.
type Date int32

// String is "YYYY-MM-DD" (the bare integer if d is not a YYYYMMDD date).
func (d Date) String() string {
	if d < 10000101 || d > 99991231 {
		return strconv.Itoa(int(d))
	}
	return yyyymmdd.Format(int32(d))
}

// FormatDate writes a YYYYMMDD integer as "YYYY-MM-DD".
func FormatDate(yyyymmdd int32) string { return Date(yyyymmdd).String() }

// ParseDate reads a calendar date given as YYYYMMDD or YYYY-MM-DD. It
// refuses a day that does not exist (20230230) or a year outside
// 1900..2100.
func ParseDate(s string) (Date, error) {
	s = strings.TrimSpace(s)
	layout := "20060102"
	if len(s) == 10 && s[4] == '-' && s[7] == '-' {
		layout = "2006-01-02"
	}
	t, err := time.Parse(layout, s)
	if err != nil || len(s) != len(layout) {
		return 0, fmt.Errorf("date %q: want YYYYMMDD or YYYY-MM-DD", s)
	}
	if t.Year() < 1900 || t.Year() > 2100 {
		return 0, fmt.Errorf("date %q: year %d is outside 1900..2100", s, t.Year())
	}
	return Date(t.Year()*10000 + int(t.Month())*100 + t.Day()), nil
}

// MarshalJSON writes "YYYY-MM-DD".
func (d Date) MarshalJSON() ([]byte, error) { return json.Marshal(d.String()) }

// UnmarshalJSON reads "YYYY-MM-DD", "YYYYMMDD" or the number YYYYMMDD.
func (d *Date) UnmarshalJSON(b []byte) error {
	var s string
	if len(b) > 0 && b[0] == '"' {
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
	} else {
		s = string(b)
	}
	v, err := ParseDate(s)
	if err != nil {
		return err
	}
	*d = v
	return nil
}
