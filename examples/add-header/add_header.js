// Adds `newheader: foo` to every response: the seed's add_header, in JavaScript.
export function response(flow) {
  flow.response.headers.set('newheader', 'foo');
}
