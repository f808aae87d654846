/**
 * Float32 loading on `cpu` at disk speed (issue 11): the checkpoint is streamed straight into the
 * variables' storage (lib/loaders/read_into.ts: widened and transposed `[out, in]` -> `[in, out]`
 * in place; a model just built keeps the arrays it was built with). No tensor is created per
 * checkpoint tensor, no tf.transpose or concat runs, and nothing holds a float32 copy next to the
 * model: peak memory is the model plus the readers' ~512 KiB blocks.
 *
 * Versions that lost:
 * - a tf.tensor per checkpoint tensor, `tf.transpose` (attention) and a host tile loop (MLP) into
 *   fresh arrays, then `variable.write`: ~6x a plain file read (the transposes, and first-touch
 *   page faults of every temporary array);
 * - one arena for every weight: a second allocation next to the zero arrays the model is built
 *   with (~10% of the load);
 * - one arena on 2 MiB transparent huge pages (the addon's allocHuge, where the native decode step
 *   moves the weights later, so that move would be saved): first touch of 221 MB took 1.3-2.5 s
 *   on this VM (the kernel compacts memory for every huge page) against 0.1-0.2 s on 4 KiB pages,
 *   so the load stays on plain pages and the native step moves the weights when it first runs
 *   (models/native_weights.ts), as before.
 *
 * @example
 * const model = withoutRandomInit(() => createModel(hfConfig));
 * loadWeightsInPlace(model, locateTensors(dir), true); // true: every weight read where the model keeps it
 */
import * as tf from '@tensorflow/tfjs';
import { Linear, type LinearLike } from '../lib/attention/linear.js';
import { check } from '../lib/errors.js';
import type { TensorLocation } from '../lib/loaders/checkpoint.js';
import { readTensorsInto } from '../lib/loaders/read_into.js';
import type { DecoderForCausalLM } from './decoder_lm.js';

const W = 'loadWeights';
/**
 * Backends loaded in place. On webgpu / webgl the per-tensor path uploads `[out, in]` as read and
 * turns it on the device (models/load.ts). On wasm this path (a host array per variable, copied
 * into the heap) took 1.0-1.2 s for the 55M bench model against the per-tensor path's 0.8-1.4 s,
 * and peaked higher (574 against 423-454 MiB RSS): wasm keeps the per-tensor path.
 */
const HOST_BACKENDS = new Set(['cpu']);

/** Where one HF tensor goes: a variable, `[out, in]` -> `[in, out]` or as stored. */
export interface Placement { variable: tf.LayerVariable; transpose: boolean }

const plain = (p: LinearLike | null) => p !== null && p.constructor === Linear;

/** Every HF tensor of the float model -> its variable; null when a layer is not plain float (LoRA, packed...). */
function placements(model: DecoderForCausalLM): Map<string, Placement> | null {
  const out = new Map<string, Placement>();
  for (const [name, t] of model.weightTargets()) out.set(name, { variable: t.variable, transpose: t.transpose });
  for (const [i, b] of model.blocks.entries()) {
    const a = b.attn, p = `model.layers.${i}.self_attn.`;
    // stacked q/k/v (a layer option no model family builds) and LoRA / packed layers: the per-tensor path
    if (b.mlp.packed || a.opts.quantConfig || a.qkvProj || ![a.qProj, a.kProj, a.vProj, a.oProj].every(plain)) return null;
    const put = (n: string, v: tf.LayerVariable | null, transpose: boolean) => { if (v) out.set(p + n, { variable: v, transpose }); };
    for (const [n, q] of [['q_proj', a.qProj!], ['k_proj', a.kProj!], ['v_proj', a.vProj!]] as const) { put(`${n}.weight`, q.kernel, true); put(`${n}.bias`, q.bias, false); }
    put('o_proj.weight', a.oProj!.kernel, true); put('o_proj.bias', a.oProj!.bias, false);
    put('q_norm.weight', a.qNormWeight, false); put('k_norm.weight', a.kNormWeight, false);
  }
  return out;
}

/**
 * Reads each named tensor into its variable's storage (`placements`: HF name -> variable, transposed
 * or not) and gives every variable that storage as its value.
 * `fresh`: the model was just built (loadPretrained) and nothing else holds its variables' values,
 * so the zero arrays it was built with are filled where they are (no second allocation); else each
 * variable gets a new array (a clone or a cached copy of the old values is never changed).
 */
export function readIntoVariables(locations: Map<string, TensorLocation>, placements: Map<string, Placement>, fresh: boolean): void {
  const byVariable = new Map<tf.LayerVariable, string[]>();
  for (const [name, p] of placements) {
    check(p.variable.dtype === 'float32', W, () => `variable ${p.variable.name} is ${p.variable.dtype}, expected float32`);
    check(locations.has(name), W, () => `tensor '${name}' is not in the checkpoint`);
    byVariable.set(p.variable, [...(byVariable.get(p.variable) ?? []), name]);
  }
  const first = (names: string[]) => { const l = locations.get(names[0])!; return [l.file, l.begin] as const; };
  const order = [...byVariable].sort(([, a], [, b]) => { const [fa, ba] = first(a), [fb, bb] = first(b); return fa < fb ? -1 : fa > fb ? 1 : ba - bb; });
  const onCpu = tf.getBackend() === 'cpu';
  const seen = new Set<ArrayBufferLike>(); // an array two variables share is never filled in place
  // One variable at a time, in file order (a new array, when one is needed, is given away at once).
  for (const [v, names] of order) {
    const size = v.shape.reduce((a: number, d) => a * (d ?? 1), 1);
    const own = fresh && onCpu ? v.read().dataSync() : null; // the cpu backend's own array, not a copy
    const data = own instanceof Float32Array && own.length === size && !seen.has(own.buffer) ? own : new Float32Array(size);
    seen.add(data.buffer);
    const shape = v.shape as number[];
    // the variable's row length: [in, out] kernels (transposed targets) or the tensor's own
    readTensorsInto(locations, new Map(names.map((n) => [n, { data, offset: 0, stride: shape[shape.length - 1] ?? 1, transpose: placements.get(n)!.transpose }])));
    const t = tf.tensor(data, shape, 'float32');
    v.write(t); // a new data id (caches keyed by it, e.g. the native step's packed q/k/v, see new values)
    t.dispose();
  }
}

/**
 * Loads a checked float32 checkpoint into `model` in place (backend `cpu`, plain float layers);
 * false (nothing done) where that does not apply and loadWeights' per-tensor path must run.
 * Every expected tensor must be in `locations` with its shape (checkTensorShapes first).
 * `fresh` as for readIntoVariables.
 */
export function loadWeightsInPlace(model: DecoderForCausalLM, locations: Map<string, TensorLocation>, fresh = false): boolean {
  if (!HOST_BACKENDS.has(tf.getBackend())) return false;
  const place = placements(model);
  if (!place) return false;
  const specs = model.weightSpecs();
  for (const name of specs.keys()) check(place.has(name), W, () => `no variable for tensor '${name}'`);
  readIntoVariables(locations, new Map([...specs.keys()].map((n) => [n, place.get(n)!])), fresh);
  return true;
}
