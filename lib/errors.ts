/** The error helpers live in core/errors.ts (the bottom layer); re-exported for lib/ and models/. */
export { AttentionRopeError, check, checkInt } from '../core/errors.js';
