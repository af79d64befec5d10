// Routes each request through the upstream proxy its `x-route` header names
// (`direct`: straight to the server) with witm's SetUpstream, and tells the
// server what Upstream reads back, in `x-upstream-seen`.
package main

import "witm/witm"

type router struct{ witm.Base }

func (router) Request(flow *witm.Flow) {
	headers := flow.Request().Headers()
	if !headers.Has("x-route") {
		return
	}
	chosen := headers.Get("x-route")
	headers.Del("x-route")
	if chosen == "direct" {
		chosen = ""
	}
	if err := flow.SetUpstream(chosen); err != nil {
		witm.Warn("set-upstream %s: %v", chosen, err)
		return
	}
	seen, ok := flow.Upstream()
	if !ok {
		seen = "direct"
	}
	headers.Set("x-upstream-seen", seen)
}

func init() { witm.Register(router{}) }
