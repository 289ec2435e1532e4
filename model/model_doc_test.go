package model

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// evalCount evaluates an integer expression of +, *, parentheses, integer
// literals and the variables in vars.
func evalCount(e ast.Expr, vars map[string]int64) (int64, error) {
	switch x := e.(type) {
	case *ast.ParenExpr:
		return evalCount(x.X, vars)
	case *ast.BasicLit:
		return strconv.ParseInt(x.Value, 10, 64)
	case *ast.Ident:
		v, ok := vars[x.Name]
		if !ok {
			return 0, fmt.Errorf("unknown symbol %s", x.Name)
		}
		return v, nil
	case *ast.BinaryExpr:
		a, err := evalCount(x.X, vars)
		if err != nil {
			return 0, err
		}
		b, err := evalCount(x.Y, vars)
		if err != nil {
			return 0, err
		}
		switch x.Op {
		case token.ADD:
			return a + b, nil
		case token.MUL:
			return a * b, nil
		}
		return 0, fmt.Errorf("operator %s", x.Op)
	}
	return 0, fmt.Errorf("unsupported expression %T", e)
}

// TestModelDocParameterCount checks docs/MODEL.md against the code: its
// parameter-count formula and its preset table equal Config.NumParams,
// and its parameter table names every entry of ParamSpecs.
func TestModelDocParameterCount(t *testing.T) {
	b, err := os.ReadFile("../docs/MODEL.md")
	if err != nil {
		t.Fatal(err)
	}
	doc := string(b)
	m := regexp.MustCompile("(?m)^N = (.+)$").FindStringSubmatch(doc)
	if m == nil {
		t.Fatal("docs/MODEL.md has no line \"N = ...\"")
	}
	formula, err := parser.ParseExpr(m[1])
	if err != nil {
		t.Fatalf("formula %q: %v", m[1], err)
	}
	rows := regexp.MustCompile(`(?m)^\| (\w+) \| (\d+) \| (\d+) \| (\d+) \| (\d+) \| ([\d,]+) \|$`).FindAllStringSubmatch(doc, -1)
	if len(rows) != len(Presets) {
		t.Fatalf("preset table has %d rows, want %d", len(rows), len(Presets))
	}
	for _, r := range rows {
		p, ok := Presets[r[1]]
		if !ok {
			t.Fatalf("preset table row %q: no such preset", r[1])
		}
		if r[2] != strconv.Itoa(p.HiddenDim) || r[3] != strconv.Itoa(p.NumLayers) || r[4] != strconv.Itoa(p.NumHeads) || r[5] != strconv.Itoa(p.SeqLen) {
			t.Errorf("preset table row %v does not match %+v", r[1:6], p)
		}
		documented, _ := strconv.ParseInt(strings.ReplaceAll(r[6], ",", ""), 10, 64)
		for _, f := range []int{16, 12, 1} {
			mc := Config{NumFeatures: f, HiddenDim: p.HiddenDim, NumLayers: p.NumLayers, NumHeads: p.NumHeads, NumHorizons: 4, NumBins: 10}
			n, err := evalCount(formula, map[string]int64{"F": int64(f), "d": int64(p.HiddenDim), "L": int64(p.NumLayers), "H": 4, "B": 10})
			if err != nil {
				t.Fatalf("formula: %v", err)
			}
			if n != mc.NumParams() {
				t.Errorf("%s with %d features: formula gives %d, NumParams %d", r[1], f, n, mc.NumParams())
			}
			var specs int64
			for _, s := range mc.ParamSpecs() {
				c := int64(1)
				for _, x := range s.Shape {
					c *= x
				}
				specs += c
			}
			if specs != n {
				t.Errorf("%s with %d features: formula %d, ParamSpecs %d", r[1], f, n, specs)
			}
			if f == 16 && documented != n {
				t.Errorf("preset table: %s has %d parameters, the formula gives %d", r[1], documented, n)
			}
		}
	}
	// Every parameter name (layer 0 standing for layer l) appears in the table.
	for _, s := range (Config{NumFeatures: 1, HiddenDim: 2, NumLayers: 1, NumHeads: 1, NumHorizons: 1, NumBins: 2}).ParamSpecs() {
		name := strings.Replace(s.Name, "layers.0.", "layers.l.", 1)
		short := name
		if i := strings.LastIndex(name, "."); strings.HasSuffix(name, ".bias") && i > 0 {
			short = "`" + name[:i] + ".weight`, `.bias`"
		}
		if !strings.Contains(doc, "`"+name+"`") && !strings.Contains(doc, short) {
			t.Errorf("docs/MODEL.md does not name parameter %s", name)
		}
	}
	if m := regexp.MustCompile(`eps = ([0-9.e+-]+)`).FindStringSubmatch(doc); m == nil {
		t.Error("docs/MODEL.md does not state the LayerNorm eps")
	} else if v, err := strconv.ParseFloat(m[1], 64); err != nil || v != LayerNormEps {
		t.Errorf("docs/MODEL.md states eps = %s, the code uses %g", m[1], LayerNormEps)
	}
}
