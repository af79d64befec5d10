// {{name}}: adds `x-{{name}}: hello` to every response.
export function response(flow) {
  flow.response.headers.set('x-{{name}}', 'hello');
}
