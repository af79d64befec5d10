// Lets a request through only if an auth service says its bearer token is
// valid (witm.HTTPGet). `-s "bearer_auth.wasm http://127.0.0.1:9000/check 60"`:
// 200 from the service means valid, 401 or 403 not (the client gets a 401);
// answers are kept in the key-value store for the second argument's seconds
// (60 by default). When the service cannot be asked, the client gets a 503.
// The service must be in the plugin's allowed_hosts.
package main

import (
	"errors"
	"strconv"
	"strings"

	"witm/witm"
)

type bearerAuth struct {
	url    string
	keepMs uint64
}

func (b *bearerAuth) Start(args []string) error {
	if len(args) == 0 {
		return errors.New("usage: bearer_auth.wasm AUTH_SERVICE_URL [CACHE_SECONDS]")
	}
	b.url = args[0]
	if len(args) > 1 {
		seconds, err := strconv.ParseUint(args[1], 10, 64)
		if err != nil {
			return err
		}
		b.keepMs = seconds * 1000
	}
	return nil
}

func refuse(flow *witm.Flow, status int, text string) {
	headers := map[string]string{"content-type": "text/plain"}
	if status == 401 {
		headers["www-authenticate"] = "Bearer"
	}
	flow.SetResponse(witm.NewResponse(status, []byte(text), headers))
}

func (b *bearerAuth) Request(flow *witm.Flow) {
	authorization := flow.Request().Headers().Get("authorization")
	token, ok := strings.CutPrefix(authorization, "Bearer ")
	if !ok {
		refuse(flow, 401, "a bearer token is required\n")
		return
	}
	now := flow.Request().TimestampStart()
	key := "bearer:" + strings.TrimSpace(token)
	var valid bool
	cached, found := witm.KVGet(key)
	verdict, until, _ := strings.Cut(cached, ":")
	if expiry, err := strconv.ParseUint(until, 10, 64); found && err == nil && expiry > now {
		valid = verdict == "valid"
	} else {
		answer, err := witm.HTTPGet(b.url, map[string]string{"authorization": authorization})
		if err != nil {
			witm.Warn("auth service not asked: %v", err)
			refuse(flow, 503, "the auth service is unavailable\n")
			return
		}
		if answer.Status != 200 && answer.Status != 401 && answer.Status != 403 {
			refuse(flow, 503, "the auth service is unavailable\n")
			return
		}
		valid = answer.Status == 200
		verdict = "invalid"
		if valid {
			verdict = "valid"
		}
		_ = witm.KVSet(key, verdict+":"+strconv.FormatUint(now+b.keepMs, 10))
	}
	if !valid {
		refuse(flow, 401, "the bearer token is not valid\n")
	}
}

func init() { witm.Register(&bearerAuth{keepMs: 60_000}) }
