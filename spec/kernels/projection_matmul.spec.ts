/**
 * ProjectionMatMul (kernels/projection_matmul.ts, native sgemm on cpu): against tf.matMul on odd
 * shapes with every transpose and with/without bias; gradients against tfjs's own and against
 * central finite differences; shape errors; the fallbacks (addon switched off, composite forced,
 * other backends); and that the layer's projections run it on cpu.
 */
import * as tf from '@tensorflow/tfjs';
import { nativeSgemm } from '../../kernels/cpu/ProjectionMatMul';
import { setCpuKernelImpl } from '../../kernels/cpu/native';
import { projectionMatMul, projectionUsesNative } from '../../kernels/projection_matmul';
import { wasmSimdActive } from '../../kernels/wasm/simd_module';
import { attentionRaggedTrain } from '../../lib/training/ragged_train';
import { registerAllKernels } from '../../kernels/register_all';
import { applyLoRA } from '../../lib/training/lora';
import { describeEachBackend, expectNoLeak } from '../support/backends';
import { maxRelDiff, randomArray } from '../support/random_layer';
import { tinyLayer } from '../training/grad_support';

type Case = [M: number, K: number, N: number];
// M <= 16 runs the weight-streaming GEMV (native/gemv.cc; 1 x 203 x 601 its K blocks, 2 x 130 x 811
// its 2-row tiles, both above the one-thread size), larger M the packed sgemm
const SHAPES: Case[] = [[1, 1, 1], [1, 203, 601], [2, 130, 811], [3, 5, 7], [16, 37, 75], [5, 130, 301], [17, 33, 65], [1020, 256, 512]];
const TRANSPOSES: [boolean, boolean][] = [[false, false], [false, true], [true, false], [true, true]];

/** a, b stored as the transposes say, and a bias `[N]`, all seeded. */
function operands(M: number, K: number, N: number, tA: boolean, tB: boolean, seed: number) {
  const a = tf.tensor2d(randomArray(M * K, seed), tA ? [K, M] : [M, K]);
  const b = tf.tensor2d(randomArray(K * N, seed + 1), tB ? [N, K] : [K, N]);
  const bias = tf.tensor1d(randomArray(N, seed + 2));
  return { a, b, bias };
}

const stock = (a: tf.Tensor2D, b: tf.Tensor2D, tA: boolean, tB: boolean, bias?: tf.Tensor1D) =>
  tf.tidy(() => { const y = tf.matMul(a, b, tA, tB); return bias ? tf.add(y, bias) : y; });

/** Runs f, reads its outputs' values and disposes them, asserting nothing else stays behind. */
function valuesNoLeak(f: () => tf.Tensor | tf.Tensor[]): { shapes: number[][]; values: Float32Array[] } {
  return expectNoLeak(() => {
    const out = f();
    const ts = Array.isArray(out) ? out : [out];
    const r = { shapes: ts.map((t) => t.shape), values: ts.map((t) => t.dataSync() as Float32Array) };
    tf.dispose(ts);
    return r;
  });
}

const ifNative = nativeSgemm() !== null ? it : it.skip; // skip reason: the addon did not build here

describeEachBackend('projectionMatMul vs tf.matMul', (backend) => {
  // wasm without the addon: the WebAssembly SIMD module (kernels/wasm/simd_module.ts)
  const nativeHere = (backend === 'cpu' || backend === 'wasm') && nativeSgemm() !== null;
  it(`runs ${nativeHere ? 'the native kernel' : 'tf.matMul'} on ${backend}`, () => {
    expect(projectionUsesNative()).toBe(nativeHere || (backend === 'wasm' && wasmSimdActive(false)));
  });

  for (const [M, K, N] of SHAPES) {
    for (const [tA, tB] of TRANSPOSES) {
      for (const withBias of [false, true]) {
        if (M === 1020 && (tA !== tB || withBias) && backend !== 'cpu') continue; // big case: two variants off cpu
        it(`${M}x${K}x${N} transposeA=${tA} transposeB=${tB}${withBias ? ' + bias' : ''}`, () => {
          const { a, b, bias } = operands(M, K, N, tA, tB, M + K + N);
          const want = stock(a, b, tA, tB, withBias ? bias : undefined);
          const got = valuesNoLeak(() => projectionMatMul(a, b, { transposeA: tA, transposeB: tB, bias: withBias ? bias : undefined }));
          expect(got.shapes[0]).toEqual([M, N]);
          expect(maxRelDiff(got.values[0], want.dataSync())).toBeLessThanOrEqual(1e-5);
          tf.dispose([a, b, bias, want]);
        });
      }
    }
  }

  // On wasm this checks the op's own K = 0 case: tfjs-wasm's matMul returns uninitialised memory there.
  it('K = 0 gives the bias (or zeros); M = 0 gives an empty output', () => {
    tf.tidy(() => {
      const bias = tf.tensor1d([1, 2, 3]);
      expect(Array.from(projectionMatMul(tf.zeros([2, 0]), tf.zeros([0, 3]), { bias }).dataSync())).toEqual([1, 2, 3, 1, 2, 3]);
      expect(Array.from(projectionMatMul(tf.zeros([2, 0]), tf.zeros([0, 3])).dataSync())).toEqual([0, 0, 0, 0, 0, 0]);
      expect(projectionMatMul(tf.zeros([0, 4]), tf.zeros([4, 3])).shape).toEqual([0, 3]);
    });
  });
});

describeEachBackend('projectionMatMul gradients', () => {
  for (const [tA, tB] of TRANSPOSES) {
    it(`match tfjs's on 17x33x65 transposeA=${tA} transposeB=${tB} (a, b and bias)`, () => {
      const { a, b, bias } = operands(17, 33, 65, tA, tB, 40);
      const mask = tf.tensor2d(randomArray(17 * 65, 43), [17, 65]);
      const loss = (f: typeof stock) => (x: tf.Tensor, y: tf.Tensor, z: tf.Tensor) =>
        tf.sum(tf.mul(f(x as tf.Tensor2D, y as tf.Tensor2D, tA, tB, z as tf.Tensor1D), mask));
      const ours = (x: tf.Tensor2D, y: tf.Tensor2D, ta: boolean, tb: boolean, z?: tf.Tensor1D) =>
        projectionMatMul(x, y, { transposeA: ta, transposeB: tb, bias: z });
      const want = tf.grads(loss(stock))([a, b, bias]);
      const got = valuesNoLeak(() => tf.grads(loss(ours))([a, b, bias]));
      got.values.forEach((g, i) => {
        expect(got.shapes[i]).toEqual(want[i].shape);
        expect(maxRelDiff(g, want[i].dataSync())).toBeLessThanOrEqual(1e-5);
      });
      tf.dispose([a, b, bias, mask, ...want]);
    });
  }

  it('match central finite differences on a tiny case (every element of a, b and bias)', () => {
    const M = 3, K = 4, N = 2;
    const av = randomArray(M * K, 50), bv = randomArray(K * N, 51), cv = randomArray(N, 52), mv = randomArray(M * N, 53);
    const f = (x: Float32Array, y: Float32Array, z: Float32Array) => tf.tidy(() => {
      const out = projectionMatMul(tf.tensor2d(x, [K, M]), tf.tensor2d(y, [N, K]), { transposeA: true, transposeB: true, bias: tf.tensor1d(z) }).dataSync();
      return out.reduce((s, v, i) => s + v * mv[i], 0); // float64 sum on the host
    });
    const grads = tf.grads((x: tf.Tensor, y: tf.Tensor, z: tf.Tensor) =>
      tf.sum(tf.mul(projectionMatMul(x as tf.Tensor2D, y as tf.Tensor2D, { transposeA: true, transposeB: true, bias: z as tf.Tensor1D }), tf.tensor2d(mv, [M, N]))))(
      [tf.tensor2d(av, [K, M]), tf.tensor2d(bv, [N, K]), tf.tensor1d(cv)]).map((g) => g.dataSync());
    const inputs = [av, bv, cv];
    const eps = 1e-2;
    inputs.forEach((v, which) => {
      for (let i = 0; i < v.length; i++) {
        const plus = inputs.map((u) => u.slice()), minus = inputs.map((u) => u.slice());
        plus[which][i] += eps; minus[which][i] -= eps;
        const fd = (f(plus[0], plus[1], plus[2]) - f(minus[0], minus[1], minus[2])) / (2 * eps);
        expect(Math.abs(fd - grads[which][i])).toBeLessThanOrEqual(1e-3 * Math.max(1, Math.abs(fd)));
      }
    });
  });
});

describe('projectionMatMul errors', () => {
  beforeAll(async () => { await tf.setBackend('cpu'); });

  it('names the argument and both values', () => {
    const a = tf.zeros([3, 5]) as tf.Tensor2D, b = tf.zeros([7, 2]) as tf.Tensor2D;
    expect(() => projectionMatMul(a, b)).toThrow(
      "[projectionMatMul] a's inner dimension (5, a [3,5] transposeA=false) must equal b's (7, b [7,2] transposeB=false)");
    expect(() => projectionMatMul(a, b, { transposeA: true, transposeB: true })).toThrow(
      "[projectionMatMul] a's inner dimension (3, a [3,5] transposeA=true) must equal b's (2, b [7,2] transposeB=true)");
    expect(() => projectionMatMul(a, tf.zeros([5, 2]) as tf.Tensor2D, { bias: tf.zeros([3]) })).toThrow(
      '[projectionMatMul] bias must be [2] (the output\'s columns), got shape [3]');
    expect(() => projectionMatMul(tf.zeros([2, 3, 5]) as unknown as tf.Tensor2D, b)).toThrow('[projectionMatMul] a must be 2-D, got shape [2,3,5]');
  });

  it('the kernel run directly checks too, and leaks nothing', () => {
    const a = tf.zeros([3, 5]), b = tf.zeros([7, 2]);
    expectNoLeak(() => expect(() => tf.engine().runKernel('ProjectionMatMul', { a, b }, { transposeA: false, transposeB: false }))
      .toThrow("[ProjectionMatMul] a's inner dimension (5, a [3,5] transposeA=false) must equal b's (7, b [7,2] transposeB=false)"));
  });
});

describe('projectionMatMul fallbacks and routing on cpu', () => {
  beforeAll(async () => { await tf.setBackend('cpu'); registerAllKernels(); });
  afterEach(() => { setCpuKernelImpl('auto'); tf.env().set('ATTENTION_ROPE_FORCE_COMPOSITE', false); });

  it('without the addon (TFJS_ATTENTION_CPU_IMPL=ts) it is tf.matMul, and the kernel falls back to tfjs-cpu\'s own', () => {
    setCpuKernelImpl('ts');
    expect(projectionUsesNative()).toBe(false);
    const { a, b, bias } = operands(17, 33, 65, false, true, 60);
    const want = stock(a, b, false, true, bias);
    expect(maxRelDiff(projectionMatMul(a, b, { transposeB: true, bias }).dataSync(), want.dataSync())).toBeLessThanOrEqual(1e-6);
    const direct = valuesNoLeak(() => tf.engine().runKernel('ProjectionMatMul', { a, b, bias }, { transposeA: false, transposeB: true }) as tf.Tensor);
    expect(maxRelDiff(direct.values[0], want.dataSync())).toBeLessThanOrEqual(1e-6);
  });

  it('ATTENTION_ROPE_FORCE_COMPOSITE keeps the stock tf.matMul path', () => {
    tf.env().set('ATTENTION_ROPE_FORCE_COMPOSITE', true);
    expect(projectionUsesNative()).toBe(false);
  });

  const kernelsOf = async (f: () => tf.Tensor) => (await tf.profile(() => { const g = tf.grad((x) => f().mul(x.sum()).sum()); return g(tf.ones([1])); })).kernelNames;

  ifNative('the layer\'s projections (forward and gradients) run ProjectionMatMul; forced composite runs BatchMatMul', async () => {
    const layer = tinyLayer({ hasBias: true });
    const x = tf.tensor2d(randomArray(8 * 16, 70), [8, 16]);
    const names = await kernelsOf(() => attentionRaggedTrain(layer, x, [0, 5, 8]));
    expect(names).toContain('ProjectionMatMul');
    expect(names).not.toContain('BatchMatMul');
    tf.env().set('ATTENTION_ROPE_FORCE_COMPOSITE', true);
    const composite = await kernelsOf(() => attentionRaggedTrain(layer, x, [0, 5, 8]));
    expect(composite).not.toContain('ProjectionMatMul');
    expect(composite).toContain('BatchMatMul');
  });

  ifNative('a frozen LoRA base kernel gets no gradient; the adapters\' gradients match the composite path\'s', () => {
    const layer = tinyLayer({ hasBias: true });
    applyLoRA(layer, { rank: 2, alpha: 4, targets: ['q', 'k', 'v', 'o'] });
    tf.tidy(() => layer.trainableWeights.forEach((w, i) => w.write(tf.tensor(randomArray(w.shape.reduce((p, q) => p! * q!, 1)!, 80 + i, 0.2), w.shape as number[]))));
    const x = tf.tensor2d(randomArray(8 * 16, 71), [8, 16]);
    const vars = layer.trainableWeights.map((w) => w.read() as tf.Variable);
    expect(vars.every((v) => /lora_/.test(v.name))).toBe(true);
    const run = () => {
      const { value, grads } = tf.variableGrads(() => tf.sum(tf.square(attentionRaggedTrain(layer, x, [0, 5, 8]))) as tf.Scalar, vars);
      value.dispose();
      return vars.map((v) => grads[v.name].dataSync());
    };
    const ours = run();
    tf.env().set('ATTENTION_ROPE_FORCE_COMPOSITE', true);
    const composite = run();
    ours.forEach((g, i) => expect(maxRelDiff(g, composite[i])).toBeLessThanOrEqual(1e-4));
  });
});
