// preview2-shim >= 0.26 starts with no preopened directories, so the
// tools running on it (componentize-js, jco) cannot read the WIT ("failed to
// get path metadata ... os error 44"). Imported before them, this opens the
// filesystem to them. (Do not put it in NODE_OPTIONS under npx: npm itself
// then grows past 10 GB.)
import { _setPreopens } from '@bytecodealliance/preview2-shim/filesystem';

_setPreopens({ '/': '/' });
