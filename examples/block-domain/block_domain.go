// Answers every request to a domain, and its subdomains, with a 403 made by
// the plugin: the server never sees it. The domain is the plugin's argument
// (`-s "block_domain.wasm ads.example"`), `blocked.example` by default.
package main

import (
	"strings"

	"witm/witm"
)

type blockDomain struct{ domain string }

func (b *blockDomain) Start(args []string) error {
	if len(args) > 0 {
		b.domain = strings.ToLower(args[0])
	}
	return nil
}

func (b *blockDomain) Request(flow *witm.Flow) {
	host := strings.ToLower(flow.Request().Host())
	if host == b.domain || strings.HasSuffix(host, "."+b.domain) {
		flow.SetResponse(witm.NewResponse(403, []byte("blocked by witm\n"),
			map[string]string{"content-type": "text/plain"}))
	}
}

func init() { witm.Register(&blockDomain{domain: "blocked.example"}) }
