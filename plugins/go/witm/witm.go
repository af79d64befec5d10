// Package witm writes witm plugins in Go.
//
// A plugin is a value that implements the event interfaces it wants
// (ResponseHandler, RequestHandler, Doner, ...), registered from an init
// function; the plugin receives exactly those events:
//
//	package main
//
//	import "witm/witm"
//
//	type addHeader struct{ witm.Base }
//
//	func (addHeader) Response(flow *witm.Flow) {
//		flow.Response().Headers().Set("newheader", "foo")
//	}
//
//	func init() { witm.Register(addHeader{}) }
//
// Build with plugins/build-go.sh add_header.go add_header.wasm. Embedding
// Base gives the plugin a Start that does nothing.
//
// What the SDK does for you: handles (a flow's request, its headers) are
// fetched on first use and released when the event returns, and the borrowed
// ones the host lends are ended too; the Go runtime's pins are released after
// each event; the collector runs between events only (a collection inside the
// host's allocation call traps the instance). Host refusals are errors of
// type *HostError. The raw API is wit/plugin.wit.
package witm

import (
	"fmt"
	"runtime"
	"runtime/debug"
	"strings"

	types "witm/witm_plugin_types"

	witTypes "go.bytecodealliance.org/pkg/wit/types"
)

// Starter is implemented by plugins that want their arguments
// (`-s "plugin.wasm a b"`) before any event; an error stops witm.
type Starter interface{ Start(args []string) error }

// Base, embedded in a plugin, gives it a Start that does nothing.
type Base struct{}

// Start does nothing.
func (Base) Start([]string) error { return nil }

// The events; a plugin implements those it wants.
type (
	ClientConnecter         interface{ ClientConnect(conn *ClientConn) }
	RequestHeadersHandler   interface{ RequestHeaders(flow *Flow) }
	RequestHandler          interface{ Request(flow *Flow) }
	ResponseHeadersHandler  interface{ ResponseHeaders(flow *Flow) }
	ResponseHandler         interface{ Response(flow *Flow) }
	ErrorHandler            interface{ Error(flow *Flow) }
	HTTPConnectHandler      interface{ HTTPConnect(flow *Flow) }
	TLSClientHelloHandler   interface{ TLSClientHello(hello *ClientHello) }
	WebSocketMessageHandler interface {
		WebSocketMessage(flow *Flow, message *WebSocketMessage)
	}
	ServerConnecter    interface{ ServerConnect(server *ServerConn) }
	ServerDisconnecter interface{ ServerDisconnect(server *ServerConn) }
	ClientDisconnecter interface{ ClientDisconnect(conn *ClientConn) }
	Doner              interface{ Done() }
	Ticker             interface{ Tick() }
)

var (
	plugin any
	ctx    *types.Context
	owned  []interface{ Drop() }
	events int
)

// Register makes p the plugin; call it from an init function.
func Register(p any) { plugin = p }

func init() {
	// A collection finishing inside cabi_realloc (the host allocating in
	// the guest) reads the clock and traps the instance: collect only
	// between events (see collect).
	debug.SetGCPercent(-1)
}

func own[T interface{ Drop() }](handle T) T {
	owned = append(owned, handle)
	return handle
}

// HostError is witm's refusal of a call.
type HostError struct {
	// Kind is the WIT's case: body-streamed, no-response, decode-failed,
	// invalid, denied, over-budget, timed-out, unreachable.
	Kind    string
	Message string
}

func (e *HostError) Error() string {
	if e.Message == "" {
		return e.Kind
	}
	return e.Kind + ": " + e.Message
}

func hostError(e types.HostError) error {
	switch e.Tag() {
	case types.HostErrorBodyStreamed:
		return &HostError{Kind: "body-streamed"}
	case types.HostErrorNoResponse:
		return &HostError{Kind: "no-response"}
	case types.HostErrorDecodeFailed:
		return &HostError{Kind: "decode-failed", Message: e.DecodeFailed()}
	case types.HostErrorInvalid:
		return &HostError{Kind: "invalid", Message: e.Invalid()}
	case types.HostErrorDenied:
		return &HostError{Kind: "denied", Message: e.Denied()}
	case types.HostErrorTimedOut:
		return &HostError{Kind: "timed-out", Message: e.TimedOut()}
	case types.HostErrorUnreachable:
		return &HostError{Kind: "unreachable", Message: e.Unreachable()}
	default:
		return &HostError{Kind: "over-budget", Message: e.OverBudget()}
	}
}

func check(r witTypes.Result[witTypes.Unit, types.HostError]) error {
	if r.IsErr() {
		return hostError(r.Err())
	}
	return nil
}

func value[T any](r witTypes.Result[T, types.HostError]) (T, error) {
	if r.IsErr() {
		var zero T
		return zero, hostError(r.Err())
	}
	return r.Ok(), nil
}

func fields(m map[string]string) []witTypes.Tuple2[string, string] {
	out := make([]witTypes.Tuple2[string, string], 0, len(m))
	for k, v := range m {
		out = append(out, witTypes.Tuple2[string, string]{F0: k, F1: v})
	}
	return out
}

// Log writes a line to witm's log, with the plugin's name.
func Log(format string, args ...any) {
	if ctx != nil {
		ctx.Log(types.LevelInfo, fmt.Sprintf(format, args...))
	}
}

// Warn writes a warning to witm's log.
func Warn(format string, args ...any) {
	if ctx != nil {
		ctx.Log(types.LevelWarn, fmt.Sprintf(format, args...))
	}
}

// KVGet reads the key-value store shared by the plugin's instances.
func KVGet(key string) (string, bool) {
	v := ctx.KvGet(key)
	return v.SomeOr(""), v.IsSome()
}

// KVSet sets a value of the key-value store.
func KVSet(key, value string) error {
	return check(ctx.KvSet(key, witTypes.Some(value)))
}

// HTTPResponse is the answer to HTTPSend.
type HTTPResponse struct {
	Status  int
	Headers [][2]string
	Body    []byte
}

// Header is the first value of header name, or "".
func (r *HTTPResponse) Header(name string) string {
	for _, h := range r.Headers {
		if strings.EqualFold(h[0], name) {
			return h[1]
		}
	}
	return ""
}

// HTTPSend sends an HTTP request and waits for its answer; the proxy
// serves other flows meanwhile. It fails with a *HostError: denied where
// the plugin's allowed_hosts do not grant the URL, timed-out, unreachable
// or over-budget. timeoutMs 0 takes the plugin's outbound_timeout_ms.
func HTTPSend(method, url string, headers map[string]string, body []byte, timeoutMs uint32) (*HTTPResponse, error) {
	answer, err := value(ctx.HttpSend(types.OutgoingRequest{
		Method:    method,
		Url:       url,
		Headers:   fields(headers),
		Body:      body,
		TimeoutMs: timeoutMs,
	}))
	if err != nil {
		return nil, err
	}
	out := &HTTPResponse{Status: int(answer.Status), Body: answer.Body}
	for _, h := range answer.Headers {
		out.Headers = append(out.Headers, [2]string{h.F0, h.F1})
	}
	return out, nil
}

// HTTPGet is HTTPSend("GET", url, headers, nil, 0).
func HTTPGet(url string, headers map[string]string) (*HTTPResponse, error) {
	return HTTPSend("GET", url, headers, nil, 0)
}

// SetTick asks for the Tick event every periodMs (0 stops it).
func SetTick(periodMs uint32) error {
	return check(ctx.SetTick(periodMs))
}

// Headers are a message's headers: case-insensitive names, several values.
type Headers struct{ h *types.Headers }

// Get is the values of name joined with ", ", or "" (as net/http's Get).
func (h *Headers) Get(name string) string { return h.h.Get(name).SomeOr("") }

// Values is every value of name, in order.
func (h *Headers) Values(name string) []string { return h.h.GetAll(name) }

// Has says whether name is present.
func (h *Headers) Has(name string) bool { return h.h.Get(name).IsSome() }

// Set replaces the values of name.
func (h *Headers) Set(name, value string) error { return check(h.h.Set(name, value)) }

// Add adds a value after the existing ones.
func (h *Headers) Add(name, value string) error { return check(h.h.Append(name, value)) }

// Insert inserts a field at index in wire order.
func (h *Headers) Insert(index int, name, value string) error {
	return check(h.h.Insert(uint32(index), name, value))
}

// Del removes every value of name.
func (h *Headers) Del(name string) { h.h.Remove(name) }

// Fields are the [name, value] pairs in wire order.
func (h *Headers) Fields() [][2]string {
	entries := h.h.Entries()
	out := make([][2]string, len(entries))
	for i, e := range entries {
		out[i] = [2]string{e.F0, e.F1}
	}
	return out
}

// Request is a flow's request.
type Request struct{ r *types.Request }

func (r *Request) Method() string                { return r.r.Method() }
func (r *Request) SetMethod(method string) error { return check(r.r.SetMethod(method)) }
func (r *Request) Scheme() string                { return r.r.Scheme() }
func (r *Request) Host() string                  { return r.r.Host() }
func (r *Request) Port() int                     { return int(r.r.Port()) }
func (r *Request) Authority() string             { return r.r.Authority() }
func (r *Request) Path() string                  { return r.r.Path() }
func (r *Request) SetPath(path string) error     { return check(r.r.SetPath(path)) }
func (r *Request) URL() string                   { return r.r.Url() }
func (r *Request) SetURL(url string) error       { return check(r.r.SetUrl(url)) }
func (r *Request) HTTPVersion() string           { return r.r.HttpVersion() }
func (r *Request) Headers() *Headers             { return &Headers{own(r.r.Headers())} }

// TimestampStart is when the proxy received the request, in milliseconds
// since the Unix epoch.
func (r *Request) TimestampStart() uint64 { return r.r.TimestampStart() }
func (r *Request) Trailers() *Headers            { return &Headers{own(r.r.Trailers())} }

// Body is the body as on the wire (still content-encoded).
func (r *Request) Body() ([]byte, error)     { return value(r.r.Body()) }
func (r *Request) SetBody(body []byte) error { return check(r.r.SetBody(body)) }

// Content is the body decoded from its content-encoding.
func (r *Request) Content() ([]byte, error)        { return value(r.r.Content()) }
func (r *Request) SetContent(content []byte) error { return check(r.r.SetContent(content)) }
func (r *Request) Text() (string, error)           { return value(r.r.Text()) }
func (r *Request) SetText(text string) error       { return check(r.r.SetText(text)) }
func (r *Request) SetStream(enabled bool)          { r.r.SetStreamBody(enabled) }

// Response is the server's response, or one made with NewResponse.
type Response struct{ r *types.Response }

// NewResponse makes a response; give it to Flow.SetResponse in Request to
// answer the client without the server.
func NewResponse(status int, body []byte, headers map[string]string) *Response {
	return &Response{types.MakeResponse(uint16(status), fields(headers), body)}
}

func (r *Response) StatusCode() int                { return int(r.r.Status()) }
func (r *Response) SetStatusCode(status int) error { return check(r.r.SetStatus(uint16(status))) }
func (r *Response) Reason() string                 { return r.r.Reason() }
func (r *Response) HTTPVersion() string            { return r.r.HttpVersion() }
func (r *Response) Headers() *Headers              { return &Headers{own(r.r.Headers())} }
func (r *Response) Trailers() *Headers             { return &Headers{own(r.r.Trailers())} }
func (r *Response) Body() ([]byte, error)          { return value(r.r.Body()) }
func (r *Response) SetBody(body []byte) error      { return check(r.r.SetBody(body)) }
func (r *Response) Content() ([]byte, error)       { return value(r.r.Content()) }
func (r *Response) SetContent(content []byte) error {
	return check(r.r.SetContent(content))
}
func (r *Response) Text() (string, error)     { return value(r.r.Text()) }
func (r *Response) SetText(text string) error { return check(r.r.SetText(text)) }
func (r *Response) SetStream(enabled bool)    { r.r.SetStreamBody(enabled) }

// FlowError is why a flow failed.
type FlowError struct {
	Message   string
	Timestamp uint64
}

// Flow is one HTTP transaction, valid during its event.
type Flow struct {
	f        *types.Flow
	request  *Request
	response *Response
	fetched  bool
}

func (f *Flow) ID() string { return f.f.Id() }

// Request is the flow's request.
func (f *Flow) Request() *Request {
	if f.request == nil {
		f.request = &Request{own(f.f.Request())}
	}
	return f.request
}

// Response is the flow's response, or nil before there is one.
func (f *Flow) Response() *Response {
	if !f.fetched {
		f.fetched = true
		if r := f.f.Response(); r.IsSome() {
			f.response = &Response{own(r.Some())}
		}
	}
	return f.response
}

// SetResponse answers the client with r (made with NewResponse).
func (f *Flow) SetResponse(r *Response) {
	f.f.SetResponse(r.r)
	f.fetched, f.response = false, nil
}

// Error is why the flow failed, or nil.
func (f *Flow) Error() *FlowError {
	e := f.f.Error()
	if e.IsNone() {
		return nil
	}
	return &FlowError{Message: e.Some().Message, Timestamp: e.Some().Timestamp}
}

func (f *Flow) Kill()                  { f.f.Kill() }
func (f *Flow) Marked() bool           { return f.f.Marked() }
func (f *Flow) SetMarked(marked bool)  { f.f.SetMarked(marked) }
func (f *Flow) Comment() string        { return f.f.Comment() }
func (f *Flow) SetComment(text string) { f.f.SetComment(text) }

// Metadata is a value kept with the flow.
func (f *Flow) Metadata(key string) (string, bool) {
	v := f.f.Metadata(key)
	return v.SomeOr(""), v.IsSome()
}

func (f *Flow) SetMetadata(key, value string) { f.f.SetMetadata(key, witTypes.Some(value)) }

// Upstream is the upstream proxy chosen for this flow (credentials left
// out); false when straight, or not chosen (the listener's mode decides).
func (f *Flow) Upstream() (string, bool) {
	v := f.f.Upstream()
	return v.SomeOr(""), v.IsSome()
}

// SetUpstream routes this flow through the upstream proxy
// "http[s]://[user:password@]host[:port]", or straight to the server with
// "", instead of the listener's mode (in HTTPConnect: the whole tunnel).
func (f *Flow) SetUpstream(proxy string) error {
	if proxy == "" {
		return check(f.f.SetUpstream(witTypes.None[string]()))
	}
	return check(f.f.SetUpstream(witTypes.Some(proxy)))
}

// ClientConn is the client's connection.
type ClientConn struct{ c *types.ClientConn }

func (c *ClientConn) ID() string      { return c.c.Id() }
func (c *ClientConn) Address() string { return c.c.Address() }

// ServerConn is a connection to a server.
type ServerConn struct{ s *types.ServerConn }

func (s *ServerConn) Address() string { return s.s.Address() }

// WebSocketMessage is a WebSocket message passing through.
type WebSocketMessage struct{ m *types.WebsocketMessage }

func (m *WebSocketMessage) FromClient() bool    { return m.m.FromClient() }
func (m *WebSocketMessage) IsText() bool        { return m.m.IsText() }
func (m *WebSocketMessage) Content() []byte     { return m.m.Content() }
func (m *WebSocketMessage) SetContent(b []byte) { m.m.SetContent(b) }
func (m *WebSocketMessage) Text() string        { return m.m.Text() }
func (m *WebSocketMessage) SetText(text string) { m.m.SetText(text) }
func (m *WebSocketMessage) Drop()               { m.m.DropMessage() }

// ClientHello is a TLS ClientHello.
type ClientHello struct {
	Client *ClientConn
	h      *types.ClientHello
}

func (h *ClientHello) SNI() string                 { return h.h.Sni().SomeOr("") }
func (h *ClientHello) SetIgnoreConnection(ig bool) { h.h.SetIgnoreConnection(ig) }

// run is one event: the context for Log and KV, then every handle the
// event fetched released, the runtime's pins released, and now and then a
// collection.
func run(context *types.Context, event func()) {
	ctx = context
	defer func() {
		for i := len(owned) - 1; i >= 0; i-- {
			owned[i].Drop()
		}
		owned = owned[:0]
		ctx = nil
		events++
		if events%64 == 0 {
			runtime.GC()
		}
	}()
	event()
}
