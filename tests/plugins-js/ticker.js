// Asks for a tick every N ms (its argument) and logs `tick n=COUNT`.
import { log, setTick } from 'witm';

let ticks = 0;

export function start(args) {
  setTick(Number(args[0]));
}

export function tick() {
  ticks += 1;
  log.info(`tick n=${ticks}`);
}
