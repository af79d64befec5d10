// Throws in `request` for paths starting /throw; adds `x-ok: js` to
// everything else: a failing JavaScript plugin must be contained like a
// Rust trap.
export function request(flow) {
  if (flow.request.path.startsWith('/throw')) {
    throw new Error('thrown on purpose');
  }
  flow.request.headers.set('x-ok', 'js');
}
