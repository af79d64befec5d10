// Adds `"witm": "rewritten"` to every JSON object a server answers with,
// working on the decoded content: a gzip body is decoded for the plugin and
// encoded again after it.
package main

import (
	"encoding/json"
	"strings"

	"witm/witm"
)

type rewriteJSON struct{ witm.Base }

func (rewriteJSON) Response(flow *witm.Flow) {
	response := flow.Response()
	if !strings.Contains(strings.ToLower(response.Headers().Get("content-type")), "json") {
		return
	}
	content, err := response.Content()
	if err != nil {
		return
	}
	var data map[string]any
	if json.Unmarshal(content, &data) != nil || data == nil {
		return
	}
	data["witm"] = "rewritten"
	if rewritten, err := json.Marshal(data); err == nil {
		response.SetContent(rewritten)
	}
}

func init() { witm.Register(rewriteJSON{}) }
