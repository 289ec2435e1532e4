package backtest

import (
	"fmt"
	"io"
	"strings"
	"unicode/utf8"
)

// textTable renders rows of cells with the first column left-aligned and the
// others right-aligned, two spaces apart.
type textTable struct{ rows [][]string }

func (t *textTable) add(cells ...string) { t.rows = append(t.rows, cells) }

func (t *textTable) addf(label string, format string, args ...any) {
	t.add(append([]string{label}, strings.Split(fmt.Sprintf(format, args...), "\t")...)...)
}

func (t *textTable) write(w io.Writer) {
	var width []int
	for _, r := range t.rows {
		for i, c := range r {
			if i >= len(width) {
				width = append(width, 0)
			}
			width[i] = max(width[i], utf8.RuneCountInString(c))
		}
	}
	for _, r := range t.rows {
		var sb strings.Builder
		for i, c := range r {
			pad := strings.Repeat(" ", width[i]-utf8.RuneCountInString(c))
			if i == 0 {
				sb.WriteString(c + pad)
			} else {
				sb.WriteString("  " + pad + c)
			}
		}
		fmt.Fprintln(w, strings.TrimRight(sb.String(), " "))
	}
}
