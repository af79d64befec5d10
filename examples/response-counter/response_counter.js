// Counts the responses it sees in a global and reports the count when witm
// stops (`done`).
import { log } from 'witm';

let responses = 0;

export function response(flow) {
  responses += 1;
}

export function done() {
  log.info(`counter: ${responses} responses`);
}
