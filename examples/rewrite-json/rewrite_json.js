// Adds `"witm": "rewritten"` to every JSON object a server answers with,
// working on the decoded content: a gzip body is decoded for the plugin and
// encoded again after it.
export function response(flow) {
  const type = flow.response.headers.get('content-type') ?? '';
  if (!type.toLowerCase().includes('json')) return;
  let data;
  try {
    data = flow.response.json();
  } catch {
    return;
  }
  if (data !== null && typeof data === 'object' && !Array.isArray(data)) {
    data.witm = 'rewritten';
    flow.response.text = JSON.stringify(data);
  }
}
