// Panics in `request` for paths starting /throw; adds `x-ok: go` to
// everything else: a failing Go plugin must be contained like a Rust trap.
package main

import (
	"strings"

	"witm/witm"
)

type panics struct{ witm.Base }

func (panics) Request(flow *witm.Flow) {
	if strings.HasPrefix(flow.Request().Path(), "/throw") {
		panic("panicked on purpose")
	}
	flow.Request().Headers().Set("x-ok", "go")
}

func init() { witm.Register(panics{}) }
