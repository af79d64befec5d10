// Adds `newheader: foo` to every response: the seed's add_header, in Go.
package main

import "witm/witm"

type addHeader struct{ witm.Base }

func (addHeader) Response(flow *witm.Flow) {
	flow.Response().Headers().Set("newheader", "foo")
}

func init() { witm.Register(addHeader{}) }
