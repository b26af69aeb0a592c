package readme

import (
	"bufio"
	"bytes"
	"fmt"
	"strings"
)

// Block is one runnable fenced block.
type Block struct {
	Mode string // plain, tls or mtls
	Line int    // 1-based line of the opening fence
	Text string
}

// Blocks returns the `sh run=<mode>` blocks of a Markdown document in
// order. An unterminated fence is an error: the block would silently
// swallow the rest of the document.
func Blocks(md []byte) ([]Block, error) {
	var out []Block
	var cur *Block
	var body strings.Builder
	sc := bufio.NewScanner(bytes.NewReader(md))
	sc.Buffer(make([]byte, 0, 64*1024), 1<<20)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		switch {
		case cur == nil && strings.HasPrefix(line, "```"):
			fields := strings.Fields(strings.TrimPrefix(line, "```"))
			if len(fields) == 2 && fields[0] == "sh" && strings.HasPrefix(fields[1], "run=") {
				cur = &Block{Mode: strings.TrimPrefix(fields[1], "run="), Line: n}
				body.Reset()
			} else {
				// Any other fenced block: skip to its end.
				cur = &Block{Line: n}
				body.Reset()
			}
		case cur != nil && strings.TrimSpace(line) == "```":
			if cur.Mode != "" {
				cur.Text = body.String()
				out = append(out, *cur)
			}
			cur = nil
		case cur != nil:
			body.WriteString(line)
			body.WriteByte('\n')
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if cur != nil {
		return nil, fmt.Errorf("line %d: fenced block never closed", cur.Line)
	}
	return out, nil
}
