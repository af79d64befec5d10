// Lets a request through only if an auth service says its bearer token is
// valid (`httpGet`). `-s "bearer_auth.wasm http://127.0.0.1:9000/check 60"`:
// 200 from the service means valid, 401 or 403 not (the client gets a 401);
// answers are kept in the key-value store for the second argument's seconds
// (60 by default). When the service cannot be asked, the client gets a 503.
// The service must be in the plugin's `allowed_hosts`.
import { HostError, Response, httpGet, kv, log } from 'witm';

let url = '';
let keepMs = 60_000;

export function start(args) {
  if (args.length === 0) throw new Error('usage: bearer_auth.wasm AUTH_SERVICE_URL [CACHE_SECONDS]');
  url = args[0];
  if (args.length > 1) keepMs = Number(args[1]) * 1000;
}

function refuse(flow, status, text) {
  const headers = { 'content-type': 'text/plain' };
  if (status === 401) headers['www-authenticate'] = 'Bearer';
  flow.response = Response.make(status, text, headers);
}

export function request(flow) {
  const authorization = flow.request.headers.get('authorization') ?? '';
  if (!authorization.startsWith('Bearer ')) return refuse(flow, 401, 'a bearer token is required\n');
  const now = flow.request.timestampStart;
  const key = `bearer:${authorization.slice('Bearer '.length).trim()}`;
  const cached = kv.get(key);
  let valid;
  if (cached && Number(cached.split(':')[1]) > now) {
    valid = cached.startsWith('valid:');
  } else {
    let answer;
    try {
      answer = httpGet(url, { authorization });
    } catch (e) {
      if (!(e instanceof HostError)) throw e;
      log.warn(`auth service not asked: ${e.message}`);
      return refuse(flow, 503, 'the auth service is unavailable\n');
    }
    if (![200, 401, 403].includes(answer.status)) {
      return refuse(flow, 503, 'the auth service is unavailable\n');
    }
    valid = answer.status === 200;
    kv.set(key, `${valid ? 'valid' : 'invalid'}:${now + keepMs}`);
  }
  if (!valid) refuse(flow, 401, 'the bearer token is not valid\n');
}
