// Typings of the witm JavaScript SDK (plugins/js/witm.js), for editors:
// a plugin imports them as `import { Response, log } from 'witm'` and may
// annotate its events, e.g. `/** @param {import('witm').Flow} flow */`.
// The raw WIT bindings' typings are generated next to this file by
// plugins/build-js.sh (types/, from `jco guest-types`).

declare module 'witm' {
  /** The plugin's arguments (`-s "plugin.wasm a b"`). */
  export const args: string[];

  /** witm refused a call; `kind` is the WIT's host-error case. */
  export class HostError extends Error {
    kind:
      | 'body-streamed'
      | 'no-response'
      | 'decode-failed'
      | 'invalid'
      | 'denied'
      | 'over-budget';
  }

  export type Body = string | Uint8Array | ArrayBuffer;

  /** A message's headers, like the Fetch API's: case-insensitive names. */
  export class Headers implements Iterable<[string, string]> {
    /** The values of `name` joined with ", ", or null. */
    get(name: string): string | null;
    getAll(name: string): string[];
    has(name: string): boolean;
    set(name: string, value: string | number): void;
    append(name: string, value: string | number): void;
    /** Inserts a field at `index` in wire order. */
    insert(index: number, name: string, value: string | number): void;
    delete(name: string): void;
    entries(): IterableIterator<[string, string]>;
    keys(): IterableIterator<string>;
    forEach(fn: (value: string, name: string, headers: Headers) => void): void;
    [Symbol.iterator](): IterableIterator<[string, string]>;
  }

  interface Message {
    readonly headers: Headers;
    readonly trailers: Headers;
    readonly httpVersion: string;
    /** Milliseconds since the epoch. */
    readonly timestampStart: number;
    /** The body as on the wire (still content-encoded). */
    body: Uint8Array;
    /** The body decoded from its content-encoding. */
    content: Uint8Array;
    text: string;
    json(): unknown;
    /** Stream the body instead of holding it for events. */
    stream: boolean;
  }

  export class Request implements Message {
    readonly headers: Headers;
    readonly trailers: Headers;
    readonly httpVersion: string;
    readonly timestampStart: number;
    body: Uint8Array;
    content: Uint8Array;
    text: string;
    json(): unknown;
    stream: boolean;
    method: string;
    scheme: string;
    host: string;
    port: number;
    readonly authority: string;
    path: string;
    url: string;
    /** The query as an object; assign an object or [name, value] pairs. */
    query: Record<string, string>;
    readonly cookies: Record<string, string>;
  }

  export class Response implements Message {
    /** A new response; assign it to flow.response in request(). */
    static make(status?: number, body?: Body, headers?: Record<string, string>): Response;
    readonly headers: Headers;
    readonly trailers: Headers;
    readonly httpVersion: string;
    readonly timestampStart: number;
    body: Uint8Array;
    content: Uint8Array;
    text: string;
    json(): unknown;
    stream: boolean;
    statusCode: number;
    status: number;
    readonly reason: string;
    readonly cookies: Record<string, { value: string; attributes: Record<string, string> }>;
  }

  export class ClientConn {
    readonly id: string;
    readonly address: string;
    readonly sni: string | null;
    readonly alpn: string | null;
  }

  export class ServerConn {
    readonly address: string;
    readonly sni: string | null;
    readonly alpn: string | null;
  }

  export class WebSocketMessage {
    readonly fromClient: boolean;
    readonly isText: boolean;
    content: Uint8Array;
    text: string;
    /** Drops the message instead of forwarding it. */
    drop(): void;
  }

  export class ClientHello {
    readonly client: ClientConn;
    readonly sni: string | null;
    readonly alpnProtocols: string[];
    ignoreConnection: boolean;
  }

  export interface FlowError {
    kind: 'client' | 'server' | 'timeout' | 'tls' | 'plugin' | 'internal';
    message: string;
    timestamp: number;
  }

  /** An HTTP flow, valid during its event. */
  export class Flow {
    readonly id: string;
    readonly request: Request;
    /** The response, or null before there is one; assign Response.make(...) to answer. */
    response: Response | null;
    readonly error: FlowError | null;
    readonly clientConn: ClientConn;
    readonly metadata: {
      get(key: string): string | null;
      set(key: string, value: string): void;
      delete(key: string): void;
      entries(): IterableIterator<[string, string]>;
    };
    marked: boolean;
    comment: string;
    /** Drops the client connection instead of answering. */
    kill(): void;
    /** The upstream proxy chosen for this flow (credentials left out). */
    readonly upstream: string | undefined;
    /** Through this upstream proxy URL, or straight to the server with null. */
    setUpstream(proxy: string | null): void;
  }

  /** witm's log, with the plugin's name. */
  export const log: {
    debug(...values: unknown[]): void;
    info(...values: unknown[]): void;
    warn(...values: unknown[]): void;
    error(...values: unknown[]): void;
  };

  /** The key-value store shared by the plugin's instances. */
  export const kv: {
    get(key: string): string | null;
    set(key: string, value: string | null): void;
  };

  /** The answer to `httpSend`. */
  export interface HttpResponse {
    status: number;
    headers: [string, string][];
    body: Uint8Array;
    text(): string;
  }

  /**
   * Sends an HTTP request (where the plugin's allowed_hosts grant it) and
   * waits for the answer; throws HostError `denied`, `timed-out`,
   * `unreachable` or `over-budget`.
   */
  export function httpSend(request: {
    method?: string;
    url: string;
    headers?: [string, string][] | Record<string, string>;
    body?: Body;
    timeoutMs?: number;
  }): HttpResponse;

  /** A GET of `url`. */
  export function httpGet(
    url: string,
    headers?: [string, string][] | Record<string, string>,
  ): HttpResponse;

  /** Asks for `tick` every `periodMs` (0 stops it). */
  export function setTick(periodMs: number): void;

  /** The events a plugin may export (all optional). */
  export interface Plugin {
    start?(args: string[]): void;
    clientConnect?(conn: ClientConn): void;
    requestHeaders?(flow: Flow): void;
    request?(flow: Flow): void;
    responseHeaders?(flow: Flow): void;
    response?(flow: Flow): void;
    error?(flow: Flow): void;
    httpConnect?(flow: Flow): void;
    tlsClienthello?(hello: ClientHello): void;
    websocketMessage?(flow: Flow, message: WebSocketMessage): void;
    serverConnect?(server: ServerConn): void;
    serverDisconnect?(server: ServerConn): void;
    clientDisconnect?(conn: ClientConn): void;
    done?(): void;
    tick?(): void;
  }
}
