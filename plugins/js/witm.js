// Write witm plugins in JavaScript: a module exporting the events it wants.
//
//     export function response(flow) {
//       flow.response.headers.set("newheader", "foo");
//     }
//
// Build with `plugins/build-js.sh add_header.js add_header.wasm`. Events
// are the WIT's in camelCase, without the context argument: start(args),
// clientConnect(conn), requestHeaders(flow), request(flow),
// responseHeaders(flow), response(flow), error(flow), httpConnect(flow),
// tlsClienthello(hello), websocketMessage(flow, message),
// serverConnect(server), serverDisconnect(server), clientDisconnect(conn),
// done(), tick(). A default export (an object, or a class the SDK instantiates)
// may hold them instead.
//
// What the SDK does for you: the plugin receives exactly the events it
// exports; `flow.request`, `flow.response.headers`, ... are host handles
// fetched on first use and released when the event returns (keep plain
// values, not these objects, across events); host refusals throw
// `HostError`; `log` and `console.log` write to witm's log; `httpSend` and
// `httpGet` call out where the plugin's allowed_hosts grant it, and
// `setTick(ms)` asks for `tick`. The raw API is
// wit/plugin.wit; typings are in witm.d.ts.

import { Response as HostResponse } from 'witm:plugin/types@0.1.0';

/** The plugin's arguments (`-s "plugin.wasm a b"`), set before `start`. */
export const args = [];

let ctx = null;
let owned = null;

/** witm refused a call; `kind` is the WIT's host-error case. */
export class HostError extends Error {
  constructor(kind, message) {
    super(message ? `${kind}: ${message}` : kind);
    this.name = 'HostError';
    this.kind = kind;
  }
}

function call(thunk) {
  try {
    return thunk();
  } catch (e) {
    const payload = e && e.payload;
    if (payload && typeof payload.tag === 'string') {
      throw new HostError(payload.tag, payload.val ?? '');
    }
    throw e;
  }
}

function own(handle) {
  if (handle != null && owned) owned.push(handle);
  return handle;
}

/** A handle given to the host (it owns it now): not to be dropped again —
 * componentize-js does not mark it moved, and a second drop traps. */
function disown(handle) {
  const at = owned ? owned.indexOf(handle) : -1;
  if (at >= 0) owned.splice(at, 1);
}

function bytes(content) {
  if (typeof content === 'string') return new TextEncoder().encode(content);
  if (content instanceof Uint8Array) return content;
  if (content instanceof ArrayBuffer) return new Uint8Array(content);
  throw new TypeError('a body is a string, a Uint8Array or an ArrayBuffer');
}

/** A message's headers, like the Fetch API's: case-insensitive names. */
export class Headers {
  constructor(handle) {
    this._h = handle;
  }
  /** The values of `name` joined with ", ", or null. */
  get(name) {
    return this._h.get(name) ?? null;
  }
  getAll(name) {
    return this._h.getAll(name);
  }
  has(name) {
    return this._h.get(name) !== undefined;
  }
  set(name, value) {
    call(() => this._h.set(name, String(value)));
  }
  append(name, value) {
    call(() => this._h.append(name, String(value)));
  }
  /** Inserts a field at `index` in wire order. */
  insert(index, name, value) {
    call(() => this._h.insert(index, name, String(value)));
  }
  delete(name) {
    this._h.remove(name);
  }
  /** [name, value] pairs in wire order, names in their wire case. */
  entries() {
    return this._h.entries()[Symbol.iterator]();
  }
  keys() {
    return this._h.entries().map(([n]) => n)[Symbol.iterator]();
  }
  forEach(fn) {
    for (const [name, value] of this._h.entries()) fn(value, name, this);
  }
  [Symbol.iterator]() {
    return this.entries();
  }
}

class Message {
  constructor(handle) {
    this._h = handle;
    this._headers = null;
    this._trailers = null;
  }
  get headers() {
    return (this._headers ??= new Headers(own(this._h.headers())));
  }
  get trailers() {
    return (this._trailers ??= new Headers(own(this._h.trailers())));
  }
  get httpVersion() {
    return this._h.httpVersion();
  }
  /** When it started, in milliseconds since the epoch. */
  get timestampStart() {
    return Number(this._h.timestampStart());
  }
  /** The body as on the wire (still content-encoded). */
  get body() {
    return call(() => this._h.body());
  }
  set body(body) {
    call(() => this._h.setBody(bytes(body)));
  }
  /** The body decoded from its content-encoding (encoded again on the way out). */
  get content() {
    return call(() => this._h.content());
  }
  set content(content) {
    call(() => this._h.setContent(bytes(content)));
  }
  get text() {
    return call(() => this._h.text());
  }
  set text(text) {
    call(() => this._h.setText(String(text)));
  }
  json() {
    return JSON.parse(this.text);
  }
  /** Whether the body streams instead of being held for events. */
  get stream() {
    return this._h.streamBody();
  }
  set stream(enabled) {
    this._h.setStreamBody(Boolean(enabled));
  }
}

function netloc(host, port, scheme) {
  const name = host.includes(':') && !host.startsWith('[') ? `[${host}]` : host;
  const usual = { http: 80, https: 443 }[scheme];
  return port === usual ? name : `${name}:${port}`;
}

/** A flow's request (mitmproxy's Request). */
export class Request extends Message {
  get method() {
    return this._h.method();
  }
  set method(method) {
    call(() => this._h.setMethod(method));
  }
  get scheme() {
    return this._h.scheme();
  }
  set scheme(scheme) {
    this.url = `${scheme}://${netloc(this.host, this.port, scheme)}${this.path}`;
  }
  get host() {
    return this._h.host();
  }
  set host(host) {
    this.url = `${this.scheme}://${netloc(host, this.port, this.scheme)}${this.path}`;
  }
  get port() {
    return this._h.port();
  }
  set port(port) {
    this.url = `${this.scheme}://${netloc(this.host, Number(port), this.scheme)}${this.path}`;
  }
  get authority() {
    return this._h.authority();
  }
  get path() {
    return this._h.path();
  }
  set path(path) {
    call(() => this._h.setPath(path));
  }
  get url() {
    return this._h.url();
  }
  set url(url) {
    call(() => this._h.setUrl(url));
  }
  /** The query as an object (the last value of a repeated name wins). */
  get query() {
    return Object.fromEntries(this._h.query());
  }
  /** Assign an object or [name, value] pairs. */
  set query(query) {
    const pairs = Array.isArray(query) ? query : Object.entries(query);
    this._h.setQuery(pairs.map(([k, v]) => [String(k), String(v)]));
  }
  get cookies() {
    return Object.fromEntries(this._h.cookies());
  }
}

/** A response: the server's, or one made with Response.make to answer the
 * client without the server. */
export class Response extends Message {
  /** A new response; assign it to flow.response in request(). */
  static make(status = 200, body = '', headers = {}) {
    const fields = Object.entries(headers).map(([k, v]) => [String(k), String(v)]);
    return new Response(own(new HostResponse(status, fields, bytes(body))));
  }
  get statusCode() {
    return this._h.status();
  }
  set statusCode(status) {
    call(() => this._h.setStatus(status));
  }
  get status() {
    return this.statusCode;
  }
  set status(status) {
    this.statusCode = status;
  }
  get reason() {
    return this._h.reason();
  }
  /** The set-cookie cookies: name → { value, attributes }. */
  get cookies() {
    return Object.fromEntries(
      this._h.cookies().map((c) => [c.name, { value: c.value, attributes: Object.fromEntries(c.attributes) }]),
    );
  }
}

/** The client's connection. */
export class ClientConn {
  constructor(handle) {
    this._h = handle;
  }
  get id() {
    return this._h.id();
  }
  get address() {
    return this._h.address();
  }
  get sni() {
    return this._h.tlsSni() ?? null;
  }
  get alpn() {
    return this._h.alpn() ?? null;
  }
}

/** A connection to a server. */
export class ServerConn {
  constructor(handle) {
    this._h = handle;
  }
  get address() {
    return this._h.address();
  }
  get sni() {
    return this._h.sni() ?? null;
  }
  get alpn() {
    return this._h.alpn() ?? null;
  }
}

/** A WebSocket message passing through. */
export class WebSocketMessage {
  constructor(handle) {
    this._h = handle;
  }
  get fromClient() {
    return this._h.fromClient();
  }
  get isText() {
    return this._h.isText();
  }
  get content() {
    return this._h.content();
  }
  set content(content) {
    this._h.setContent(bytes(content));
  }
  get text() {
    return this._h.text();
  }
  set text(text) {
    this._h.setText(String(text));
  }
  /** Drops the message instead of forwarding it. */
  drop() {
    this._h.dropMessage();
  }
}

/** A TLS ClientHello (tlsClienthello). */
export class ClientHello {
  constructor(conn, handle) {
    this.client = new ClientConn(conn);
    this._h = handle;
  }
  get sni() {
    return this._h.sni() ?? null;
  }
  get alpnProtocols() {
    return this._h.alpnProtocols();
  }
  get ignoreConnection() {
    return this._h.ignoreConnection();
  }
  set ignoreConnection(ignore) {
    this._h.setIgnoreConnection(Boolean(ignore));
  }
}

class Metadata {
  constructor(handle) {
    this._h = handle;
  }
  get(key) {
    return this._h.metadata(key) ?? null;
  }
  set(key, value) {
    this._h.setMetadata(key, String(value));
  }
  delete(key) {
    this._h.setMetadata(key, undefined);
  }
  entries() {
    return this._h.metadataEntries()[Symbol.iterator]();
  }
}

/** An HTTP flow (mitmproxy's HTTPFlow), valid during its event. */
export class Flow {
  constructor(handle) {
    this._h = handle;
    this._request = null;
    this._response = undefined;
  }
  get id() {
    return this._h.id();
  }
  get request() {
    return (this._request ??= new Request(own(this._h.request())));
  }
  /** The response, or null before there is one. */
  get response() {
    if (this._response === undefined) {
      const handle = own(this._h.response());
      this._response = handle ? new Response(handle) : null;
    }
    return this._response;
  }
  set response(response) {
    if (!(response instanceof Response)) {
      throw new TypeError('flow.response takes a Response (Response.make)');
    }
    disown(response._h);
    this._h.setResponse(response._h);
    // The handle now belongs to the flow: fetch the flow's view of it.
    this._response = undefined;
  }
  /** { kind, message, timestamp } of a failed flow, or null. */
  get error() {
    const error = this._h.error();
    return error ? { kind: error.kind, message: error.message, timestamp: Number(error.timestamp) } : null;
  }
  get clientConn() {
    return new ClientConn(own(this._h.clientConn()));
  }
  get metadata() {
    return new Metadata(this._h);
  }
  get marked() {
    return this._h.marked();
  }
  set marked(marked) {
    this._h.setMarked(Boolean(marked));
  }
  get comment() {
    return this._h.comment();
  }
  set comment(comment) {
    this._h.setComment(String(comment));
  }
  /** Drops the client connection instead of answering. */
  kill() {
    this._h.kill();
  }
  /**
   * The upstream proxy chosen for this flow (credentials left out), or
   * undefined: straight, or not chosen (the listener's mode decides).
   */
  get upstream() {
    return this._h.upstream();
  }
  /**
   * Routes this flow through the upstream proxy
   * `http[s]://[user:password@]host[:port]`, or straight to the server with
   * null, instead of the listener's mode (in `httpConnect`: the whole
   * tunnel). Throws HostError `invalid` for a malformed URL.
   */
  setUpstream(proxy) {
    call(() => this._h.setUpstream(proxy ?? undefined));
  }
}

function line(values) {
  return values.map((v) => (typeof v === 'string' ? v : JSON.stringify(v))).join(' ');
}

/** witm's log, with the plugin's name. */
export const log = {
  debug: (...v) => ctx && ctx.log('debug', line(v)),
  info: (...v) => ctx && ctx.log('info', line(v)),
  warn: (...v) => ctx && ctx.log('warn', line(v)),
  error: (...v) => ctx && ctx.log('error', line(v)),
};

/** The key-value store shared by the plugin's instances (it outlives an
 * instance that failed; globals do not). */
export const kv = {
  get: (key) => ctx.kvGet(key) ?? null,
  set: (key, value) => call(() => ctx.kvSet(key, value ?? undefined)),
};

/**
 * Sends an HTTP request and returns `{ status, headers, body, text() }`
 * (headers as [name, value] pairs, body a Uint8Array); the proxy serves
 * other flows while this waits. Throws HostError `denied` where the
 * plugin's allowed_hosts do not grant the URL, `timed-out`, `unreachable`
 * or `over-budget`.
 */
export function httpSend({ method = 'GET', url, headers = [], body = '', timeoutMs = 0 }) {
  const pairs = Array.isArray(headers) ? headers : Object.entries(headers);
  const answer = call(() =>
    ctx.httpSend({
      method,
      url,
      headers: pairs.map(([n, v]) => [String(n), String(v)]),
      body: bytes(body),
      timeoutMs,
    }),
  );
  return {
    status: answer.status,
    headers: answer.headers,
    body: answer.body,
    text: () => new TextDecoder().decode(answer.body),
  };
}

/** `httpSend({ method: 'GET', url, headers })`. */
export function httpGet(url, headers = []) {
  return httpSend({ url, headers });
}

/** Asks for the `tick` event every `periodMs` (0 stops it). */
export function setTick(periodMs) {
  call(() => ctx.setTick(periodMs));
}

/** Runs one event: `ctx` for log and kv, handles released at the end. */
function run(context, fn, wrap) {
  ctx = context;
  owned = [];
  try {
    return fn(...wrap());
  } finally {
    for (const handle of owned.reverse()) {
      try {
        handle[Symbol.dispose]();
      } catch {
        // given to the host already (flow.response = ...)
      }
    }
    owned = null;
    ctx = null;
  }
}

const EVENTS = [
  'clientConnect',
  'request',
  'response',
  'error',
  'clientDisconnect',
  'done',
  'httpConnect',
  'tlsClienthello',
  'requestHeaders',
  'responseHeaders',
  'websocketMessage',
  'serverConnect',
  'serverDisconnect',
  'tick',
];

/** The world's exports for a plugin module (build-js.sh calls this). */
export function makeWorld(plugin) {
  let source = plugin;
  const fallback = plugin.default;
  if (typeof fallback === 'function') source = new fallback();
  else if (fallback && typeof fallback === 'object') source = fallback;
  const handler = (name) => {
    const fn = source[name] ?? plugin[name];
    return typeof fn === 'function' ? fn.bind(source) : null;
  };
  const flow = (f) => [new Flow(f)];
  const wraps = {
    clientConnect: (c) => [new ClientConn(c)],
    clientDisconnect: (c) => [new ClientConn(c)],
    done: () => [],
    tick: () => [],
    tlsClienthello: (c, h) => [new ClientHello(c, h)],
    websocketMessage: (f, m) => [new Flow(f), new WebSocketMessage(m)],
    serverConnect: (s) => [new ServerConn(s)],
    serverDisconnect: (s) => [new ServerConn(s)],
  };
  const world = {};
  const subscribed = {};
  for (const name of EVENTS) {
    const fn = handler(name);
    subscribed[name] = fn !== null;
    const wrap = wraps[name] ?? flow;
    world[name] = fn ? (context, ...handles) => run(context, fn, () => wrap(...handles)) : () => {};
  }
  const start = handler('start');
  world.start = (context, given) => {
    args.splice(0, args.length, ...given);
    if (start) run(context, start, () => [args]);
    return subscribed;
  };
  return world;
}
