package main

import (
	"io"
	"sort"
	"strings"

	"github.com/urfave/cli/v2"
)

// categoryOrder is the order of the flag headings in --help: the method's
// documented order (urfave/cli sorts them alphabetically by itself).
var categoryOrder = []string{catData, catSelection, catTraining, catModel, catCheckpoint, catOther, catStrategy}

func orderedCategories(cats []cli.VisibleFlagCategory) []cli.VisibleFlagCategory {
	rank := func(name string) int {
		for i, c := range categoryOrder {
			if c == name {
				return i
			}
		}
		return len(categoryOrder)
	}
	out := append([]cli.VisibleFlagCategory(nil), cats...)
	sort.SliceStable(out, func(i, j int) bool { return rank(out[i].Name()) < rank(out[j].Name()) })
	return out
}

// The flag-category part of urfave's command help, ranging over the
// documented order instead of the alphabetical one.
const orderedFlagCategories = `{{range orderedCategories .VisibleFlagCategories}}
   {{if .Name}}{{.Name}}

   {{end}}{{$flglen := len .Flags}}{{range $i, $e := .Flags}}{{if eq (subtract $flglen $i) 1}}{{$e}}
{{else}}{{$e}}
   {{end}}{{end}}{{end}}`

func init() {
	cli.CommandHelpTemplate = strings.Replace(cli.CommandHelpTemplate,
		`{{template "visibleFlagCategoryTemplate" .}}`, orderedFlagCategories, 1)
	cli.HelpPrinter = func(w io.Writer, templ string, data interface{}) {
		cli.HelpPrinterCustom(w, templ, data, map[string]interface{}{"orderedCategories": orderedCategories})
	}
}
