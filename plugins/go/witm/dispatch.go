package witm

import (
	types "witm/witm_plugin_types"

	witTypes "go.bytecodealliance.org/pkg/wit/types"
)

// Dispatch is what the component's exports call (package
// export_wit_world): one method per WIT export. Plugins do not use it.
var Dispatch dispatch

type dispatch struct{}

// Start passes the arguments and returns the events the plugin implements.
func (dispatch) Start(context *types.Context, args []string) witTypes.Result[types.Events, string] {
	defer context.Drop()
	var failed error
	if s, ok := plugin.(Starter); ok {
		run(context, func() { failed = s.Start(args) })
	}
	if failed != nil {
		return witTypes.Err[types.Events, string](failed.Error())
	}
	return witTypes.Ok[types.Events, string](subscriptions())
}

func subscriptions() types.Events {
	var events types.Events
	add := func(implemented bool, event types.Events) {
		if implemented {
			events |= event
		}
	}
	_, ok := plugin.(ClientConnecter)
	add(ok, types.EventsClientConnect)
	_, ok = plugin.(RequestHandler)
	add(ok, types.EventsRequest)
	_, ok = plugin.(ResponseHandler)
	add(ok, types.EventsResponse)
	_, ok = plugin.(ErrorHandler)
	add(ok, types.EventsError)
	_, ok = plugin.(ClientDisconnecter)
	add(ok, types.EventsClientDisconnect)
	_, ok = plugin.(Doner)
	add(ok, types.EventsDone)
	_, ok = plugin.(HTTPConnectHandler)
	add(ok, types.EventsHttpConnect)
	_, ok = plugin.(TLSClientHelloHandler)
	add(ok, types.EventsTlsClienthello)
	_, ok = plugin.(RequestHeadersHandler)
	add(ok, types.EventsRequestHeaders)
	_, ok = plugin.(ResponseHeadersHandler)
	add(ok, types.EventsResponseHeaders)
	_, ok = plugin.(WebSocketMessageHandler)
	add(ok, types.EventsWebsocketMessage)
	_, ok = plugin.(ServerConnecter)
	add(ok, types.EventsServerConnect)
	_, ok = plugin.(ServerDisconnecter)
	add(ok, types.EventsServerDisconnect)
	_, ok = plugin.(Ticker)
	add(ok, types.EventsTick)
	return events
}

// flowEvent runs a flow event if the plugin implements it; the borrowed
// context and flow are ended when it returns.
func flowEvent[H any](context *types.Context, f *types.Flow, call func(H, *Flow)) {
	defer context.Drop()
	defer f.Drop()
	if h, ok := plugin.(H); ok {
		run(context, func() { call(h, &Flow{f: f}) })
	}
}

func (dispatch) Request(c *types.Context, f *types.Flow) {
	flowEvent(c, f, RequestHandler.Request)
}

func (dispatch) Response(c *types.Context, f *types.Flow) {
	flowEvent(c, f, ResponseHandler.Response)
}

func (dispatch) Error(c *types.Context, f *types.Flow) {
	flowEvent(c, f, ErrorHandler.Error)
}

func (dispatch) RequestHeaders(c *types.Context, f *types.Flow) {
	flowEvent(c, f, RequestHeadersHandler.RequestHeaders)
}

func (dispatch) ResponseHeaders(c *types.Context, f *types.Flow) {
	flowEvent(c, f, ResponseHeadersHandler.ResponseHeaders)
}

func (dispatch) HttpConnect(c *types.Context, f *types.Flow) {
	flowEvent(c, f, HTTPConnectHandler.HTTPConnect)
}

func (dispatch) WebsocketMessage(c *types.Context, f *types.Flow, m *types.WebsocketMessage) {
	defer m.Drop()
	flowEvent(c, f, func(h WebSocketMessageHandler, flow *Flow) {
		h.WebSocketMessage(flow, &WebSocketMessage{m})
	})
}

func (dispatch) ClientConnect(c *types.Context, conn *types.ClientConn) {
	defer c.Drop()
	defer conn.Drop()
	if h, ok := plugin.(ClientConnecter); ok {
		run(c, func() { h.ClientConnect(&ClientConn{conn}) })
	}
}

func (dispatch) ClientDisconnect(c *types.Context, conn *types.ClientConn) {
	defer c.Drop()
	defer conn.Drop()
	if h, ok := plugin.(ClientDisconnecter); ok {
		run(c, func() { h.ClientDisconnect(&ClientConn{conn}) })
	}
}

func (dispatch) ServerConnect(c *types.Context, s *types.ServerConn) {
	defer c.Drop()
	defer s.Drop()
	if h, ok := plugin.(ServerConnecter); ok {
		run(c, func() { h.ServerConnect(&ServerConn{s}) })
	}
}

func (dispatch) ServerDisconnect(c *types.Context, s *types.ServerConn) {
	defer c.Drop()
	defer s.Drop()
	if h, ok := plugin.(ServerDisconnecter); ok {
		run(c, func() { h.ServerDisconnect(&ServerConn{s}) })
	}
}

func (dispatch) TlsClienthello(c *types.Context, conn *types.ClientConn, hello *types.ClientHello) {
	defer c.Drop()
	defer conn.Drop()
	defer hello.Drop()
	if h, ok := plugin.(TLSClientHelloHandler); ok {
		run(c, func() { h.TLSClientHello(&ClientHello{Client: &ClientConn{conn}, h: hello}) })
	}
}

func (dispatch) Done(c *types.Context) {
	defer c.Drop()
	if h, ok := plugin.(Doner); ok {
		run(c, h.Done)
	}
}

func (dispatch) Tick(c *types.Context) {
	defer c.Drop()
	if h, ok := plugin.(Ticker); ok {
		run(c, h.Tick)
	}
}
