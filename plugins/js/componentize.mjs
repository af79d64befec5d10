// node componentize.mjs SOURCE.js WIT_DIR OUT.wasm — componentize-js with
// the filesystem preopened: preview2-shim >= 0.26 starts with no preopens,
// and componentize-js then cannot read the WIT ("os error 44").
import './preopens.mjs';
import { componentize } from '@bytecodealliance/componentize-js';
import { writeFile } from 'node:fs/promises';

const [source, wit, out] = process.argv.slice(2);
const { component } = await componentize({
  sourcePath: source,
  witPath: wit,
  worldName: 'plugin',
  // No WASI but stdout/stderr (console.log reaches witm's log): witm grants
  // plugins no clocks, randomness, network or HTTP.
  disableFeatures: ['random', 'clocks', 'http', 'fetch-event'],
});
await writeFile(out, component);
