// What an untrusted Go plugin might try, one act per request path (the twin
// of tests/plugins/hostile): `/loop` spins forever, `/bomb` grows its memory
// without end, `/passwd` reads /etc/passwd, `/env` reads WITM_SECRET,
// `/socket?port=N` connects to 127.0.0.1:N. What it got goes to the origin
// in `x-hostile` ("denied: ..." or "got ...").
package main

import (
	"net"
	"os"
	"strings"

	"witm/witm"
)

type hostile struct{ witm.Base }

var kept [][]byte

func outcome(got string, err error) string {
	if err != nil {
		return "denied: " + err.Error()
	}
	if got == "" {
		return "denied: nothing there"
	}
	return "got " + got
}

func (hostile) Request(flow *witm.Flow) {
	path := flow.Request().Path()
	var result string
	switch {
	case strings.HasPrefix(path, "/loop"):
		for {
		}
	case strings.HasPrefix(path, "/bomb"):
		for {
			kept = append(kept, make([]byte, 1<<20))
		}
	case strings.HasPrefix(path, "/passwd"):
		data, err := os.ReadFile("/etc/passwd")
		result = outcome(string(data[:min(len(data), 20)]), err)
	case strings.HasPrefix(path, "/env"):
		result = outcome(os.Getenv("WITM_SECRET"), nil)
	case strings.HasPrefix(path, "/socket"):
		port := "1"
		if at := strings.Index(path, "port="); at >= 0 {
			port = path[at+5:]
		}
		conn, err := net.Dial("tcp", "127.0.0.1:"+port)
		if err == nil {
			conn.Close()
		}
		result = outcome("a connection", err)
	default:
		return
	}
	flow.Request().Headers().Set("x-hostile", result)
}

func init() { witm.Register(hostile{}) }
