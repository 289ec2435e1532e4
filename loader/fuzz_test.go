package loader

import (
	"encoding/binary"
	"math"
	"testing"
)

// FuzzImportCSVFile: the CSV parser never panics, and what it keeps is clean:
// strictly increasing dates, positive finite prices with low <= open,close <= high,
// non-negative volume.
func FuzzImportCSVFile(f *testing.F) {
	f.Add([]byte("Date,Open,High,Low,Close,Adj Close,Volume\n2020-01-02,1,2,0.5,1.5,1.4,100\n2020-01-03,1,2,0.5,1.5,1.4,0\n"))
	f.Add([]byte("timestamp,open,high,low,close,adjusted_close,volume,dividend_amount,split_coefficient\n2021-04-21,1,1,1,1,1,1,0,1\n2021-04-20,1,1,1,1,1,1,0,1\n"))
	f.Add([]byte("{\n    \"Error Message\": \"Invalid API call.\"\n}\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		s, st, err := parseCSVFile(data)
		if err != nil {
			return
		}
		if st == nil || s == nil {
			t.Fatal("nil result without error")
		}
		for i := range s.dates {
			if i > 0 && s.dates[i] <= s.dates[i-1] {
				t.Fatalf("dates not increasing at %d", i)
			}
			o, h, l, c, v := s.o[i], s.h[i], s.l[i], s.c[i], s.v[i]
			for _, x := range []float64{o, h, l, c} {
				if !(x > 0) || math.IsInf(x, 0) {
					t.Fatalf("row %d: price %v", i, x)
				}
			}
			if l > math.Min(o, c)*(1+1e-12) || h < math.Max(o, c)*(1-1e-12) || !(v >= 0) {
				t.Fatalf("row %d: o %v h %v l %v c %v v %v", i, o, h, l, c, v)
			}
		}
	})
}

// FuzzOpen writes small panels whose shapes, dates, edges and values come
// from the fuzzer and checks that Open either fails with an error or yields a
// dataset whose windows are all finite.
func FuzzOpen(f *testing.F) {
	f.Add([]byte{4, 120, 10, 0, 0, 0, 0})
	f.Add([]byte{2, 40, 30, 1, 7, 3, 0xff, 0x80, 0x7f, 0xc0})
	f.Add([]byte{1, 10, 9, 2, 2, 2, 2})
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, b []byte) {
		if len(b) < 4 {
			return
		}
		T := int(b[0])%5 + 1
		D := int(b[1])%150 + 1
		seq := int(b[2])%40 + 1
		p := knownPanel(T, D)
		if D < 25 {
			p.Horizons = []int{1, 2}
			for k := range p.Returns {
				p.Returns[k] = 1
			}
		}
		// mutate: byte pairs pick a position and a value
		rest := b[3:]
		for len(rest) >= 5 {
			pos := int(binary.LittleEndian.Uint16(rest))
			val := math.Float32frombits(binary.LittleEndian.Uint32(rest[1:5]))
			switch rest[0] % 4 {
			case 0:
				p.Features[pos%len(p.Features)] = val
			case 1:
				p.Returns[pos%len(p.Returns)] = val
			case 2:
				p.BinEdges[pos%2][pos%5] = val
			case 3:
				p.Dates[pos%D] = int32(binary.LittleEndian.Uint32(rest[1:5]))
			}
			rest = rest[5:]
		}
		path := dir + "/f.h5"
		if err := WritePanel(path, p); err != nil {
			return
		}
		d, err := Open(path, Options{SeqLen: seq, ValSize: 5})
		if err != nil {
			return
		}
		defer d.Close()
		for _, name := range []string{"train", "val", "test"} {
			s := d.Split(name)
			n := s.Len()
			if n > 50 {
				n = 50
			}
			ids := make([]SeqID, n)
			for i := range ids {
				ids[i] = s.At(int64(i))
			}
			feats := make([]float32, len(ids)*seq*d.F)
			labels := make([]int64, len(ids)*d.H)
			if err := d.ReadWindows(ids, feats, labels, nil); err != nil {
				t.Fatal(err)
			}
			for _, x := range feats {
				if x != x || math.IsInf(float64(x), 0) {
					t.Fatal("non-finite feature in a window")
				}
			}
			for _, l := range labels {
				if l < 0 || l >= int64(d.B) {
					t.Fatalf("label %d out of range", l)
				}
			}
		}
	})
}
