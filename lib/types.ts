/** Shared option types live in core/types.ts (the bottom layer); re-exported for lib/ and models/. */
export { MASK_CODE, MASK_VARIANTS, type DevicePlacement, type DType, type MaskSpec, type MaskVariant } from '../core/types.js';
