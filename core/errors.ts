/**
 * Error helpers. Every message names the function, the argument and both values, e.g.
 * `[AttentionWithRope] numAttentionHeads (30) must be a multiple of numKeyValueHeads (8)`.
 * Messages are built lazily so passing checks cost nothing.
 */
export class AttentionRopeError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'AttentionRopeError';
  }
}

/** Throws `[where] message()` when `cond` is false. */
export function check(cond: unknown, where: string, message: () => string): asserts cond {
  if (!cond) throw new AttentionRopeError(`[${where}] ${message()}`);
}

/** Throws unless `value` is an integer >= `min`. */
export function checkInt(value: unknown, where: string, name: string, min = 0): asserts value is number {
  check(
    typeof value === 'number' && Number.isInteger(value) && value >= min,
    where,
    () => `${name} must be an integer >= ${min}, got ${String(value)}`,
  );
}
