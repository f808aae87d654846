/**
 * Training, layer level: the ragged no-cache path and its fused kernels with registered gradients,
 * LoRA, the attention layer's Hugging Face export, losses and loop helpers. The model-level half
 * (`modelRaggedTrain`, `initializeWeights`, `exportHfWeights`, `saveHfCheckpoint`) lives in models/.
 *
 * What is differentiable:
 * - `layer.apply(x [B, S, hidden])` (padded, no cache): plain tfjs ops.
 * - `attentionRaggedTrain(layer, hidden [T, hidden], rowOffsets)` / `modelRaggedTrain(model, ids, rowOffsets)`:
 *   packed sequences, no padding, no cache; FlashAttentionRagged + RopeRagged kernels (cpu, wasm) with
 *   registered gradients, composite elsewhere.
 * - `layer.callRagged(...)` (paged cache): gradients reach the hidden input, the projections and the
 *   q-norm weight through q only. K and V are written into the cache's pages (not tensors), so no
 *   gradient flows through the cache; train on the no-cache paths.
 *
 * @example
 * installMatMulGradient();   // opt-in: untransposed 2-D matMul gradients (several times faster on wasm)
 * for (const b of model.blocks) applyLoRA(b.attn, { rank: 8, alpha: 16, targets: ['q', 'v'] });
 * const opt = tf.train.adam(1e-3);
 * const vars = model.trainableWeights.map((w) => w.read() as tf.Variable);
 * opt.minimize(() => maskedCrossEntropy(modelRaggedTrain(model, ids, rowOffsets), targets, weights), false, vars);
 * saveHfCheckpoint(model, 'out/finetuned', hfConfig); // (tfjs-attention-rope/node) loads back with loadPretrained
 */
export { attentionRaggedTrain, positionsFromOffsets } from './ragged_train.js';
export { flashAttentionRagged, ropeRagged } from '../../kernels/train_ops.js';
/** Kept name of `registerAllKernels` (every kernel and gradient; ops also run it on first use). */
export { registerAllKernels as registerTrainingKernels } from '../../kernels/register_all.js';
export { FlashAttentionRagged, FlashAttentionRaggedGrad, type FlashAttentionRaggedAttrs } from '../../kernels/kernel_names.js';
export { installMatMulGradient, uninstallMatMulGradient } from './matmul_grad.js';
export { LoRALinear, applyLoRA, loraLinearClass, loraClassName, loraProjections, loraTraining, mergeLoRA, splitLoRA, type LoRAOptions, type LoRATarget } from './lora.js';
export { attentionHfTensors } from '../attention/hf_export.js';
export { maskedAccuracy, maskedCrossEntropy } from './loss.js';
export { clipByGlobalNorm, setLearningRate, warmupCosine } from './optim.js';
