// Package export_wit_world is what wit-bindgen's generated exports call:
// each export forwards to the witm SDK (witm.Dispatch), written once for
// every Go plugin.
package export_wit_world

import (
	"witm/witm"
	types "witm/witm_plugin_types"

	witTypes "go.bytecodealliance.org/pkg/wit/types"
)

func Start(context *types.Context, args []string) witTypes.Result[types.Events, string] {
	return witm.Dispatch.Start(context, args)
}

func ClientConnect(c *types.Context, conn *types.ClientConn) {
	witm.Dispatch.ClientConnect(c, conn)
}

func Request(c *types.Context, f *types.Flow) {
	witm.Dispatch.Request(c, f)
}

func Response(c *types.Context, f *types.Flow) {
	witm.Dispatch.Response(c, f)
}

func Error(c *types.Context, f *types.Flow) {
	witm.Dispatch.Error(c, f)
}

func ClientDisconnect(c *types.Context, conn *types.ClientConn) {
	witm.Dispatch.ClientDisconnect(c, conn)
}

func Done(c *types.Context) {
	witm.Dispatch.Done(c)
}

func RequestHeaders(c *types.Context, f *types.Flow) {
	witm.Dispatch.RequestHeaders(c, f)
}

func ResponseHeaders(c *types.Context, f *types.Flow) {
	witm.Dispatch.ResponseHeaders(c, f)
}

func WebsocketMessage(c *types.Context, f *types.Flow, m *types.WebsocketMessage) {
	witm.Dispatch.WebsocketMessage(c, f, m)
}

func ServerConnect(c *types.Context, s *types.ServerConn) {
	witm.Dispatch.ServerConnect(c, s)
}

func ServerDisconnect(c *types.Context, s *types.ServerConn) {
	witm.Dispatch.ServerDisconnect(c, s)
}

func HttpConnect(c *types.Context, f *types.Flow) {
	witm.Dispatch.HttpConnect(c, f)
}

func TlsClienthello(c *types.Context, conn *types.ClientConn, hello *types.ClientHello) {
	witm.Dispatch.TlsClienthello(c, conn, hello)
}

func Tick(c *types.Context) {
	witm.Dispatch.Tick(c)
}
