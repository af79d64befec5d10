// Answers every request to a domain, and its subdomains, with a 403 made by
// the plugin: the server never sees it. The domain is the plugin's argument
// (`-s "block_domain.wasm ads.example"`), `blocked.example` by default.
import { Response } from 'witm';

let blocked = 'blocked.example';

export function start(args) {
  if (args.length > 0) blocked = args[0].toLowerCase();
}

export function request(flow) {
  const host = flow.request.host.toLowerCase();
  if (host === blocked || host.endsWith(`.${blocked}`)) {
    flow.response = Response.make(403, 'blocked by witm\n', { 'content-type': 'text/plain' });
  }
}
