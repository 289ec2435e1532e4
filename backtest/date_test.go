package backtest

import (
	"encoding/json"
	"testing"
)

func TestDateFormats(t *testing.T) {
	for _, s := range []string{"20180131", "2018-01-31"} {
		d, err := ParseDate(s)
		if err != nil || d != 20180131 || d.String() != "2018-01-31" {
			t.Errorf("ParseDate(%q) = %v (%d), %v", s, d, int32(d), err)
		}
	}
	for _, s := range []string{"2018-02-29", "20181301", "2018-1-31", "1850-01-01", "2018.01.31", ""} {
		if _, err := ParseDate(s); err == nil {
			t.Errorf("ParseDate(%q): no error", s)
		}
	}
	b, err := json.Marshal(struct{ D Date }{20240229})
	if err != nil || string(b) != `{"D":"2024-02-29"}` {
		t.Errorf("marshal: %s, %v", b, err)
	}
	// Reports written before dates were ISO strings hold numbers.
	for _, in := range []string{`{"D":"2024-02-29"}`, `{"D":20240229}`, `{"D":"20240229"}`} {
		var v struct{ D Date }
		if err := json.Unmarshal([]byte(in), &v); err != nil || v.D != 20240229 {
			t.Errorf("unmarshal %s: %v, %v", in, v.D, err)
		}
	}
	var v struct{ D Date }
	if err := json.Unmarshal([]byte(`{"D":"2024-02-30"}`), &v); err == nil {
		t.Error("unmarshal of a day that does not exist: no error")
	}
}
