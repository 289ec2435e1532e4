package loader

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

const realDataDir = "../../shared/data/sp500-daily"

func ymd(d int32) string { return fmt.Sprintf("%04d-%02d-%02d", d/10000, d/100%100, d%100) }

// TestImportCSVRealSubset imports 20 real files, including the broken
// DA-BF.B file and the short DA-VTRS file.
func TestImportCSVRealSubset(t *testing.T) {
	if _, err := os.Stat(realDataDir); err != nil {
		t.Skipf("real data not available: %v", err)
	}
	names := []string{"AAPL", "MSFT", "BF.B", "VTRS", "JPM", "XOM", "JNJ", "WMT", "KO", "PG",
		"INTC", "CSCO", "PFE", "MRK", "GE", "IBM", "HD", "BA", "T", "NKE"}
	dir := t.TempDir()
	for _, n := range names {
		f := "DA-" + n + "-T-2021-04-21.csv"
		if err := os.Symlink(mustAbs(t, filepath.Join(realDataDir, f)), filepath.Join(dir, f)); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink(mustAbs(t, filepath.Join(realDataDir, "constituents.csv")), filepath.Join(dir, "constituents.csv")); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "sp20.h5")
	rep, err := ImportCSV(dir, out, ImportOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Log(rep)
	if rep.FilesRead != 20 || rep.TickersKept != 18 || len(rep.FilesDropped) != 2 {
		t.Fatalf("files read %d, kept %d, dropped %v", rep.FilesRead, rep.TickersKept, rep.FilesDropped)
	}
	reasons := rep.FilesDropped[0].File + ": " + rep.FilesDropped[0].Reason + "\n" + rep.FilesDropped[1].File + ": " + rep.FilesDropped[1].Reason
	for _, want := range []string{`DA-BF.B-T-2021-04-21.csv: not a price CSV: header lacks a date column (first line "{")`,
		"DA-VTRS-T-2021-04-21.csv: only 107 usable rows (minimum 250)"} {
		if !strings.Contains(reasons, want) {
			t.Errorf("drop reasons %q lack %q", reasons, want)
		}
	}
	if rep.FirstDate != 19991101 || rep.LastDate != 20210421 || rep.Groups == 0 {
		t.Errorf("report: %+v", rep)
	}
	d, err := Open(out, Options{SeqLen: 64})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	tk := indexOf(d.Tickers(), "AAPL")
	day := indexOf32(d.Dates(), 20200828)
	if tk < 0 || day < 0 {
		t.Fatal("AAPL or 2020-08-28 missing")
	}
	if g := d.Groups()[tk]; g != "Information Technology" {
		t.Errorf("AAPL group %q", g)
	}
	// AAPL split 4:1 on 2020-08-31: adjusted closes 124.405824223 -> 128.624702503
	want := float32(128.624702503 / 124.405824223)
	got := d.returns[(tk*d.D+day)*d.H]
	if math.Abs(float64(got-want)) > 1e-6 {
		t.Errorf("AAPL 1-day return on 2020-08-28: got %v, want %v", got, want)
	}
	// The 20-day return from 2020-08-28 uses the split-adjusted close 20 rows later.
	if r := d.returns[(tk*d.D+day)*d.H+3]; r < 0.8 || r > 1.3 {
		t.Errorf("AAPL 20-day return across the split: %v", r)
	}
	// features normalised on the training period: mean ~0, sd ~1 there
	for f := 0; f < d.F; f++ {
		var n, s, s2 float64
		for tt := 0; tt < d.T; tt++ {
			for dd := 0; dd < d.valStart; dd++ {
				x := float64(d.features[(tt*d.D+dd)*d.F+f])
				if x == x {
					n++
					s += x
					s2 += x * x
				}
			}
		}
		m, sd := s/n, math.Sqrt(s2/n-(s/n)*(s/n))
		if math.Abs(m) > 0.05 || sd < 0.9 || sd > 1.05 {
			t.Errorf("feature %s: training mean %.3f sd %.3f", d.names[f], m, sd)
		}
	}
	if d.Split("train").Len() < 50000 || d.Split("test").Len() < 10000 {
		t.Errorf("splits: %d train, %d test", d.Split("train").Len(), d.Split("test").Len())
	}
}

func mustAbs(t *testing.T, p string) string {
	a, err := filepath.Abs(p)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func indexOf(s []string, x string) int {
	for i, v := range s {
		if v == x {
			return i
		}
	}
	return -1
}

func indexOf32(s []int32, x int32) int {
	for i, v := range s {
		if v == x {
			return i
		}
	}
	return -1
}

// TestImportCSVMessy feeds hand-made faulty files in both layouts.
func TestImportCSVMessy(t *testing.T) {
	dir := t.TempDir()
	dates := TradingDays(20190102, 300)
	// Yahoo layout with faults, price 100 rising 0.1% a day
	var y []string
	for i, d := range dates {
		c := 100 * math.Pow(1.001, float64(i))
		y = append(y, fmt.Sprintf("%s,%.4f,%.4f,%.4f,%.4f,%.4f,%d", ymd(d), c*0.999, c*1.01, c*0.99, c, c, 1000+i))
	}
	y[10] = fmt.Sprintf("%s,null,null,null,null,null,null", ymd(dates[10]))                                  // missing values
	y[20] = fmt.Sprintf("%s,%.4f,%.4f,%.4f,0,0,500", ymd(dates[20]), 1.0, 1.0, 1.0)                          // zero close
	y[30] = strings.Replace(y[30], fmt.Sprintf(",%d", 1030), ",0", 1)                                        // zero volume (kept)
	y[40] = fmt.Sprintf("%s,%.4f,%.4f,%.4f,%.4f,%.4f,1040", ymd(dates[40]), 100.0, 99.0, 98.0, 101.0, 101.0) // high < close: repaired
	y[50], y[51] = y[51], y[50]                                                                              // unsorted
	y = append(y[:61], append([]string{y[60]}, y[61:]...)...)                                                // duplicate date
	writeFile(t, dir, "GOOD.csv", "Date,Open,High,Low,Close,Adj Close,Volume\n"+strings.Join(y, "\n")+"\n")

	// sp500-daily layout with a 2:1 split on day 150: raw prices halve, adjusted_close is continuous
	var a []string
	for i, d := range dates {
		adj := 50 * math.Pow(1.002, float64(i))
		raw := adj * 2
		if i >= 150 {
			raw = adj
		}
		a = append(a, fmt.Sprintf("%s,%.6f,%.6f,%.6f,%.6f,%.6f,%d,0.0,1.0", ymd(d), raw, raw*1.01, raw*0.99, raw, adj, 2000))
	}
	writeFile(t, dir, "DA-SPLT-T-2021-04-21.csv", "timestamp,open,high,low,close,adjusted_close,volume,dividend_amount,split_coefficient\n"+strings.Join(a, "\n")+"\n")
	writeFile(t, dir, "DA-ERR-T-2021-04-21.csv", "{\n    \"Error Message\": \"Invalid API call.\"\n}\n")
	writeFile(t, dir, "SHORT.csv", "Date,Open,High,Low,Close,Adj Close,Volume\n2019-01-02,1,1,1,1,1,1\n")
	writeFile(t, dir, "EMPTY.csv", "")
	writeFile(t, dir, "constituents.csv", "Symbol,Name,Sector\nGOOD,Good Inc,Energy\n")

	out := filepath.Join(t.TempDir(), "messy.h5")
	rep, err := ImportCSV(dir, out, ImportOptions{MinRows: 200})
	if err != nil {
		t.Fatal(err)
	}
	s := rep.String()
	t.Log(s)
	if rep.FilesRead != 5 || rep.TickersKept != 2 || len(rep.FilesDropped) != 3 {
		t.Fatalf("files read %d kept %d dropped %v", rep.FilesRead, rep.TickersKept, rep.FilesDropped)
	}
	checks := map[string]int64{
		"unparseable or missing number":   rep.RowsDropped["unparseable or missing number"],
		"zero or negative price":          rep.RowsDropped["zero or negative price"],
		"duplicate date (first row kept)": rep.RowsDropped["duplicate date (first row kept)"],
		"unsorted":                        rep.Repaired["files with unsorted dates (sorted)"],
		"high/low":                        rep.Repaired["rows with high/low widened to contain open/close"],
		"zero volume":                     rep.ZeroVolumeRows,
	}
	for k, n := range checks {
		if n != 1 {
			t.Errorf("%s: %d, want 1", k, n)
		}
	}
	for _, want := range []string{
		"dropped DA-ERR-T-2021-04-21.csv: not a price CSV: header lacks a date column",
		"dropped EMPTY.csv: no CSV header",
		"dropped SHORT.csv: only 1 usable rows (minimum 200)",
		"tickers without one (group \"Unknown\"): SPLT",
	} {
		if !strings.Contains(s, want) {
			t.Errorf("report lacks %q", want)
		}
	}
	// Dates are YYYY-MM-DD, as in every other output (docs/METRICS.md).
	panelLine := regexp.MustCompile(`panel: 2 tickers x 300 days \((\d{4}-\d\d-\d\d)\.\.(\d{4}-\d\d-\d\d)\), \d+ features, train end (\d{4}-\d\d-\d\d), val end (\d{4}-\d\d-\d\d)\n`)
	if m := panelLine.FindStringSubmatch(s); m == nil || m[1] != FormatDate(rep.FirstDate) || m[3] != FormatDate(rep.TrainEnd) {
		t.Errorf("report's panel line is not in YYYY-MM-DD dates (first %d, train end %d):\n%s", rep.FirstDate, rep.TrainEnd, s)
	}
	d, err := Open(out, Options{SeqLen: 32})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if strings.Join(d.Tickers(), ",") != "GOOD,SPLT" || d.Groups()[0] != "Energy" || d.D != 300 {
		t.Fatalf("tickers %v groups %v days %d", d.Tickers(), d.Groups(), d.D)
	}
	// split-adjusted: the 1-day return across the split is 1.002, not 0.5
	if r := d.returns[(1*d.D+149)*d.H]; math.Abs(float64(r)-1.002) > 1e-5 {
		t.Errorf("return across split %v, want 1.002", r)
	}
	// GOOD's dropped rows (10 and 20) are missing: no window covers them
	if d.isValid(0, 10) || d.isValid(0, 20+31) || !d.isValid(0, 120) {
		t.Error("windows over dropped rows must be invalid")
	}
	// its 5-day return from day 100 is 1.001^5
	if r := d.returns[(0*d.D+100)*d.H+1]; math.Abs(float64(r)-math.Pow(1.001, 5)) > 1e-5 {
		t.Errorf("GOOD 5-day return %v", r)
	}
}

func writeFile(t *testing.T, dir, name, content string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestParseDate(t *testing.T) {
	for s, want := range map[string]int32{"2021-04-21": 20210421, "2021/04/21": 20210421, "20210421": 20210421,
		"2021-04-21 16:00:00": 20210421, "2021-02-30": 0, "21-04-21": 0, "": 0, "2021-13-01": 0} {
		got, ok := parseDate(s)
		if got != want || ok != (want != 0) {
			t.Errorf("parseDate(%q) = %d %v, want %d", s, got, ok, want)
		}
	}
	for name, want := range map[string]string{"DA-BF.B-T-2021-04-21.csv": "BF.B", "AAPL.csv": "AAPL", "x/DA-A-T-2021-04-21.csv": "A"} {
		if got := tickerFromFile(name); got != want {
			t.Errorf("tickerFromFile(%q) = %q, want %q", name, got, want)
		}
	}
}

// TestImportAllFilesRefused: when no file is usable the error counts the
// reasons and names an example of each.
func TestImportAllFilesRefused(t *testing.T) {
	dir := t.TempDir()
	for _, n := range []string{"A", "B", "C", "D"} {
		writeFile(t, dir, "DA-"+n+"-T-2021-04-21.csv", "{\n    \"Error Message\": \"Invalid API call.\"\n}\n")
	}
	writeFile(t, dir, "E.csv", "Date,Open,High,Low,Close,Adj Close,Volume\n2019-01-02,1,1,1,1,1,1\n")
	writeFile(t, dir, "F.csv", "Date,Open,High,Low,Close,Adj Close,Volume\n2019-01-02,1,1,1,1,1,1\n2019-01-03,1,1,1,1,1,1\n")
	_, err := ImportCSV(dir, filepath.Join(t.TempDir(), "p.h5"), ImportOptions{})
	wantErr(t, err, "loader: import "+dir+": no usable CSV files (6 read, 6 dropped: 4 not a price CSV, 2 too few usable rows; e.g. ",
		`DA-A-T-2021-04-21.csv: not a price CSV: header lacks a date column (first line "{")`,
		"E.csv: only 1 usable rows (minimum 250))")

	empty := t.TempDir()
	writeFile(t, empty, "constituents.csv", "Symbol,Name,Sector\nA,A Inc,Energy\n")
	_, err = ImportCSV(empty, filepath.Join(t.TempDir(), "p.h5"), ImportOptions{})
	wantErr(t, err, "loader: import "+empty+": no CSV files (*.csv other than constituents.csv) in the folder")
}
