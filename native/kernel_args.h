// The integer-argument blocks the JavaScript side passes to the addon (`ints`), one index per
// name. kernels/cpu/native_args.ts holds the same table (spec/kernels/native_args.spec.ts reads
// this file and compares); change both together.
#pragma once

// ropeSplitStore(..., ints, ...)
enum RopeArg { ROPE_T, ROPE_BATCH, ROPE_N_HEADS, ROPE_N_KV, ROPE_HEAD_DIM, ROPE_ROTARY_DIM, ROPE_INTERLEAVED,
               ROPE_PAGE_SIZE, ROPE_MAX_PAGES, ROPE_KV_DTYPE, ROPE_COUNT };

// flashAttention(..., ints, scale)
enum AttnArg { ATTN_BATCH, ATTN_N_HEADS, ATTN_N_KV, ATTN_HEAD_DIM, ATTN_PAGE_SIZE, ATTN_MAX_PAGES, ATTN_MASK,
               ATTN_WINDOW, ATTN_CHUNK, ATTN_VARIANT, ATTN_KV_DTYPE, ATTN_COUNT };

// flashTrain(..., ints, scale)
enum TrainArg { TRAIN_BATCH, TRAIN_N_HEADS, TRAIN_N_KV, TRAIN_HEAD_DIM, TRAIN_MASK, TRAIN_WINDOW, TRAIN_CHUNK,
                TRAIN_COUNT };
