package loader

import (
	"bytes"
	"encoding/binary"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"gonum.org/v1/hdf5"
)

// leakTickers are the six files of the issue-13 case: the last 700 rows of
// each, rewritten in the Yahoo layout.
var leakTickers = []string{"AAPL", "MSFT", "XOM", "JPM", "KO", "PFE"}

// yahooRows returns the last n data rows of a real sp500-daily file as Yahoo
// lines (Date,Open,High,Low,Close,Adj Close,Volume), skipping the test when
// the data is absent (a failure under CI=true).
func yahooRows(t *testing.T, ticker string, n int) []string {
	t.Helper()
	path := filepath.Join(realDataDir, "DA-"+ticker+"-T-2021-04-21.csv")
	b, err := os.ReadFile(path)
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("real data: %v", err)
		}
		t.Skipf("real data not available: %v", err)
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")[1:]
	if len(lines) < n {
		t.Fatalf("%s: %d rows, want %d", path, len(lines), n)
	}
	out := make([]string, 0, n)
	for _, l := range lines[len(lines)-n:] {
		f := strings.Split(strings.TrimSpace(l), ",")
		out = append(out, strings.Join(f[:7], ","))
	}
	return out
}

// rowIndex is the position of the row dated date (YYYY-MM-DD) in rows.
func rowIndex(t *testing.T, rows []string, date string) int {
	t.Helper()
	for i, r := range rows {
		if strings.HasPrefix(r, date+",") {
			return i
		}
	}
	t.Fatalf("no row dated %s", date)
	return -1
}

func withDate(row, date string) string { return date + row[strings.IndexByte(row, ','):] }

// setField replaces field k (0 = date ... 6 = volume) of a CSV line.
func setField(row string, k int, v string) string {
	f := strings.Split(row, ",")
	f[k] = v
	return strings.Join(f, ",")
}

// importPanel writes the files (ticker -> rows) to a fresh folder, imports
// them and returns the report and the raw bytes of /features and /returns.
func importPanel(t *testing.T, files map[string][]string, opt ImportOptions) (*ImportReport, []byte, []byte, *Panel) {
	t.Helper()
	dir := t.TempDir()
	for tk, rows := range files {
		writeFile(t, dir, tk+".csv", "Date,Open,High,Low,Close,Adj Close,Volume\n"+strings.Join(rows, "\n")+"\n")
	}
	out := filepath.Join(t.TempDir(), "p.h5")
	rep, err := ImportCSV(dir, out, opt)
	if err != nil {
		t.Fatal(err)
	}
	p := &Panel{}
	var feats, rets []byte
	err = h5do(func() error {
		f, err := hdf5.OpenFile(out, hdf5.F_ACC_RDONLY)
		if err != nil {
			return err
		}
		defer f.Close()
		read := func(name string) ([]float32, error) {
			i, err := openDatasetH5(f, name, nil)
			if err != nil {
				return nil, err
			}
			defer i.close()
			return i.readFloat32H5()
		}
		fv, err := read("features")
		if err != nil {
			return err
		}
		rv, err := read("returns")
		if err != nil {
			return err
		}
		p.Features, p.Returns = fv, rv
		di, err := openDatasetH5(f, "dates", nil)
		if err != nil {
			return err
		}
		defer di.close()
		p.Dates, err = di.readInt32H5()
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	feats = f32Bytes(p.Features)
	rets = f32Bytes(p.Returns)
	return rep, feats, rets, p
}

func f32Bytes(x []float32) []byte {
	b := make([]byte, 4*len(x))
	for i, v := range x {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(v))
	}
	return b
}

func cloneFiles(m map[string][]string) map[string][]string {
	out := map[string][]string{}
	for k, v := range m {
		out[k] = slices.Clone(v)
	}
	return out
}

// TestImportDroppedRowsContributeNothing: a row that is not on the panel's
// day axis, or that a repair drops, changes no byte of /features or
// /returns. Each case is compared with the folder it should equal.
func TestImportDroppedRowsContributeNothing(t *testing.T) {
	base := map[string][]string{}
	for _, tk := range leakTickers {
		base[tk] = yahooRows(t, tk, 700)
	}
	baseRep, baseF, baseR, baseP := importPanel(t, base, ImportOptions{})

	// gap: AAPL lacks 2019-01-15 (a day the others trade).
	gap := cloneFiles(base)
	gi := rowIndex(t, gap["AAPL"], "2019-01-15")
	gap["AAPL"] = slices.Delete(gap["AAPL"], gi, gi+1)
	_, gapF, gapR, _ := importPanel(t, gap, ImportOptions{})
	if bytes.Equal(gapF, baseF) {
		t.Fatal("a missing AAPL day left /features unchanged: the comparison below would prove nothing")
	}

	type variant struct {
		name   string
		edit   func(aapl []string) []string
		wantF  []byte
		wantR  []byte
		report func(t *testing.T, r *ImportReport)
	}
	fri := rowIndex(t, base["AAPL"], "2019-01-25")
	cases := []variant{
		{"saturday copy of friday (issue 13)", func(a []string) []string {
			return slices.Insert(a, fri+1, withDate(a[fri], "2019-01-26"))
		}, baseF, baseR, func(t *testing.T, r *ImportReport) {
			if n := r.RowsDropped["on dates most listed tickers lack (e.g. holidays)"]; n != 1 {
				t.Errorf("rows dropped off the day axis: %d, want 1", n)
			}
		}},
		{"zero-volume row on a holiday (MLK day)", func(a []string) []string {
			i := rowIndex(t, a, "2019-01-18")
			return slices.Insert(a, i+1, setField(withDate(a[i], "2019-01-21"), 6, "0"))
		}, baseF, baseR, func(t *testing.T, r *ImportReport) {
			if r.ZeroVolumeRows != baseRep.ZeroVolumeRows {
				t.Errorf("zero-volume rows kept: %d, want %d (the holiday row is dropped, not kept)", r.ZeroVolumeRows, baseRep.ZeroVolumeRows)
			}
		}},
		{"weekend row whose high/low needs widening", func(a []string) []string {
			return slices.Insert(a, fri+1, setField(withDate(a[fri], "2019-01-27"), 2, "1"))
		}, baseF, baseR, func(t *testing.T, r *ImportReport) {
			if got, want := r.Repaired["rows with high/low widened to contain open/close"], baseRep.Repaired["rows with high/low widened to contain open/close"]; got != want {
				t.Errorf("rows widened: %d, want %d (the weekend row is dropped)", got, want)
			}
		}},
		{"weekend row after the last trading day", func(a []string) []string {
			return append(a, withDate(a[len(a)-1], "2021-04-24"))
		}, baseF, baseR, nil},
		{"duplicate date (later row differs)", func(a []string) []string {
			return slices.Insert(a, fri+1, setField(a[fri], 4, "1"))
		}, baseF, baseR, func(t *testing.T, r *ImportReport) {
			if r.RowsDropped["duplicate date (first row kept)"] != 1 || r.Repaired["files with unsorted dates (sorted)"] != 0 {
				t.Errorf("duplicate: dropped %v, repaired %v (a duplicate is not disorder)", r.RowsDropped, r.Repaired)
			}
		}},
		{"unsorted file", func(a []string) []string {
			slices.Reverse(a)
			return a
		}, baseF, baseR, func(t *testing.T, r *ImportReport) {
			if r.Repaired["files with unsorted dates (sorted)"] != 1 {
				t.Errorf("repaired %v, want one unsorted file", r.Repaired)
			}
		}},
		{"null row = gap", func(a []string) []string {
			a[gi] = "2019-01-15,null,null,null,null,null,null"
			return a
		}, gapF, gapR, nil},
		{"zero close = gap", func(a []string) []string {
			a[gi] = setField(setField(a[gi], 4, "0"), 5, "0")
			return a
		}, gapF, gapR, nil},
		{"negative volume = gap", func(a []string) []string {
			a[gi] = setField(a[gi], 6, "-5")
			return a
		}, gapF, gapR, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			files := cloneFiles(base)
			files["AAPL"] = c.edit(files["AAPL"])
			rep, f, r, p := importPanel(t, files, ImportOptions{})
			if !slices.Equal(p.Dates, baseP.Dates) {
				t.Fatalf("dates differ: %d days, want %d", len(p.Dates), len(baseP.Dates))
			}
			if !bytes.Equal(r, c.wantR) {
				t.Errorf("/returns differ")
			}
			if !bytes.Equal(f, c.wantF) {
				F := len(ImportFeatureNames)
				days := map[int]bool{}
				for i := 0; i < len(f)/4; i++ {
					if !bytes.Equal(f[4*i:4*i+4], c.wantF[4*i:4*i+4]) {
						days[i/F] = true
					}
				}
				t.Errorf("/features differ on %d (ticker, day) rows", len(days))
			}
			if c.report != nil {
				c.report(t, rep)
			}
		})
	}
}

// TestImportMinRowsCountsAxisRows: MinRows counts the rows on the panel's
// trading days; a weekend row does not make up for a missing day.
func TestImportMinRowsCountsAxisRows(t *testing.T) {
	files := map[string][]string{}
	for _, tk := range leakTickers {
		files[tk] = yahooRows(t, tk, 700)
	}
	xom := files["XOM"][1:] // 699 trading days
	fri := rowIndex(t, xom, "2019-01-25")
	files["XOM"] = slices.Insert(xom, fri+1, withDate(xom[fri], "2019-01-26"))
	rep, _, _, _ := importPanel(t, files, ImportOptions{MinRows: 700})
	if rep.TickersKept != 5 || len(rep.FilesDropped) != 1 {
		t.Fatalf("kept %d tickers, dropped %v; want XOM dropped", rep.TickersKept, rep.FilesDropped)
	}
	want := FileIssue{File: "XOM.csv", Reason: "only 699 usable rows on the panel's trading days (minimum 700)", Kind: fileIssueTooFew}
	if rep.FilesDropped[0] != want {
		t.Errorf("dropped %+v, want %+v", rep.FilesDropped[0], want)
	}
}
