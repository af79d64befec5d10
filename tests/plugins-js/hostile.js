// What an untrusted JavaScript plugin might try, one act per request path
// (the twin of tests/plugins/hostile): `/loop` spins forever, `/bomb` grows
// its memory without end, `/passwd` reads /etc/passwd, `/env` reads
// WITM_SECRET, `/socket?port=N` connects to 127.0.0.1:N. What it got goes
// to the origin in `x-hostile` ("denied: ..." or "got ...").
function attempt(act) {
  try {
    const got = act();
    return got === undefined || got === null || got === '' ? 'denied: nothing there' : `got ${got}`;
  } catch (e) {
    return `denied: ${e}`.slice(0, 200);
  }
}

export function request(flow) {
  const path = flow.request.path;
  let outcome = null;
  if (path.startsWith('/loop')) {
    for (;;) {}
  } else if (path.startsWith('/bomb')) {
    const kept = [];
    for (;;) kept.push(new Uint8Array(1 << 20));
  } else if (path.startsWith('/passwd')) {
    // No filesystem API reaches the host's files: try what the engine has.
    outcome = attempt(() => (typeof std !== 'undefined' ? std.loadFile('/etc/passwd') : undefined));
  } else if (path.startsWith('/env')) {
    outcome = attempt(() => globalThis.process?.env?.WITM_SECRET);
  } else if (path.startsWith('/socket')) {
    const port = path.split('port=')[1] ?? '1';
    outcome = attempt(() => {
      if (typeof fetch !== 'function') throw new Error('no fetch');
      fetch(`http://127.0.0.1:${port}/`);
      return 'a request sent';
    });
  }
  if (outcome !== null) flow.request.headers.set('x-hostile', outcome);
}
