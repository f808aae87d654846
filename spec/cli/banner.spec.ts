/** silenceNodeBackendBanner: the tfjs cpu backend's Node banner goes, other tfjs warnings stay. */
const BANNER = /looks like you are running TensorFlow\.js in Node\.js/;

type Tf = typeof import('@tensorflow/tfjs');

/**
 * Warnings printed while `body` runs on a fresh tfjs: its own module registry and, since tfjs keeps
 * its engine and kernel registry on the global object, its own globals (restored afterwards).
 */
async function warningsOfFreshTfjs(body: (tf: Tf, silence: () => void) => void): Promise<string[]> {
  const g = globalThis as Record<string, unknown>;
  const saved = { engine: g._tfengine, globals: g._tfGlobals };
  const warn = jest.spyOn(console, 'warn').mockImplementation(() => undefined);
  try {
    delete g._tfengine;
    delete g._tfGlobals;
    await jest.isolateModulesAsync(async () => {
      const tf = await import('@tensorflow/tfjs');
      const { silenceNodeBackendBanner } = await import('../../lib/backends/quiet_banner');
      body(tf, silenceNodeBackendBanner);
    });
    return warn.mock.calls.map((c) => c.join(' '));
  } finally {
    warn.mockRestore();
    g._tfengine = saved.engine;
    g._tfGlobals = saved.globals;
  }
}

describe('tfjs Node banner', () => {
  it('prints without the fix (so this spec can see it) and not with it, whether the backend is set before, after, or picked by tfjs', async () => {
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

    // no setBackend at all: tfjs makes a new cpu instance when it picks the best backend itself
    const autoPicked = await warningsOfFreshTfjs((tf, silence) => { silence(); tf.tensor([1]).dispose(); });
    expect(autoPicked.filter((w) => BANNER.test(w))).toEqual([]);

    const plainAutoPicked = await warningsOfFreshTfjs((tf) => { tf.tensor([1]).dispose(); });
    expect(plainAutoPicked.some((w) => BANNER.test(w))).toBe(true);
  });
});
