// {{name}}: adds `x-{{name}}: hello` to every response.
package main

import "witm/witm"

type plugin struct{ witm.Base }

func (plugin) Response(flow *witm.Flow) {
	flow.Response().Headers().Set("x-{{name}}", "hello")
}

func init() { witm.Register(plugin{}) }
