// Routes each request through the upstream proxy its `x-route` header names
// (`direct`: straight to the server) with witm's setUpstream, and tells the
// server what `upstream` reads back, in `x-upstream-seen`.
export function request(flow) {
  const headers = flow.request.headers;
  const chosen = headers.get('x-route');
  if (chosen == null) return;
  headers.delete('x-route');
  flow.setUpstream(chosen === 'direct' ? null : chosen);
  headers.set('x-upstream-seen', flow.upstream ?? 'direct');
}
