/** silenceNodeBackendBanner: the tfjs cpu backend's Node banner goes, other tfjs warnings stay. */
const BANNER = /looks like you are running TensorFlow\.js in Node\.js/;

type Tf = typeof import('@tensorflow/tfjs');

/** Warnings printed by a fresh tfjs (own module registry) while `body` runs on the cpu backend. */
async function warningsOfFreshTfjs(body: (tf: Tf, silence: () => void) => void): Promise<string[]> {
  const warn = jest.spyOn(console, 'warn').mockImplementation(() => undefined);
  try {
    await jest.isolateModulesAsync(async () => {
      const tf = await import('@tensorflow/tfjs');
      const { silenceNodeBackendBanner } = await import('../../lib/backends/quiet_banner');
      body(tf, silenceNodeBackendBanner);
    });
    return warn.mock.calls.map((c) => c.join(' '));
  } finally {
    warn.mockRestore();
  }
}

describe('tfjs Node banner', () => {
  it('prints without the fix (so this spec can see it) and not with it, before or after the backend is chosen', async () => {
    const plain = await warningsOfFreshTfjs((tf) => { tf.setBackend('cpu'); tf.tensor([1, 2]).dispose(); });
    expect(plain.some((w) => BANNER.test(w))).toBe(true);

    const silenced = await warningsOfFreshTfjs((tf, silence) => {
      silence();
      silence(); // idempotent
      tf.setBackend('cpu');
      tf.tensor([1, 2]).dispose();
      tf.backend_util.warn('a real warning');
    });
    expect(silenced.filter((w) => BANNER.test(w))).toEqual([]);
    expect(silenced).toContain('a real warning');

    const afterSetBackend = await warningsOfFreshTfjs((tf, silence) => { tf.setBackend('cpu'); silence(); tf.tensor([1]).dispose(); });
    expect(afterSetBackend.filter((w) => BANNER.test(w))).toEqual([]);
  });
});
