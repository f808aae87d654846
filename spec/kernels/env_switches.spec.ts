/**
 * One prefix for environment switches (core/env.ts): `TFJS_ATTENTION_<NAME>` wins, the old names
 * still work as aliases.
 */
import { envSwitch } from '../../core/env';

describe('environment switches', () => {
  const saved = { ...process.env };
  afterEach(() => { process.env = { ...saved }; });

  it('reads TFJS_ATTENTION_<NAME> first, then the aliases in order', () => {
    delete process.env.TFJS_ATTENTION_FORCE_COMPOSITE;
    delete process.env.ATTENTION_ROPE_FORCE_COMPOSITE;
    expect(envSwitch('FORCE_COMPOSITE', 'ATTENTION_ROPE_FORCE_COMPOSITE')).toBeUndefined();
    process.env.ATTENTION_ROPE_FORCE_COMPOSITE = '1';
    expect(envSwitch('FORCE_COMPOSITE', 'ATTENTION_ROPE_FORCE_COMPOSITE')).toBe('1');
    process.env.TFJS_ATTENTION_FORCE_COMPOSITE = '0';
    expect(envSwitch('FORCE_COMPOSITE', 'ATTENTION_ROPE_FORCE_COMPOSITE')).toBe('0');
  });
});
