/* The key and value cache of exact attention's decoding (softmax's keys,
 * polynomial's normalised keys), in chunks of KV_CHUNK positions:
 *
 *   chunk c: keys [NH][hs][KV_CHUNK] (transposed), then values [NH][KV_CHUNK][hs]
 *
 * so that one head's part of a chunk is two runs of hs x KV_CHUNK floats
 * (4 KB each at hs = 64), and a head's q . k for KV_CHUNK positions is one
 * vector: hs FMAs and no horizontal sum per position. */
#ifndef ATTENTION_KVCACHE_H
#define ATTENTION_KVCACHE_H

#include <string.h>

#include "../common/vmath.h"

#define KV_CHUNK 16

/* floats for positions [0, T) of C = NH x hs channels */
static inline size_t kv_floats(int C, int T) { return (size_t)(T + KV_CHUNK - 1) / KV_CHUNK * KV_CHUNK * 2 * C; }

static inline float *kv_chunk(float *state, int C, int t) { return state + (size_t)(t / KV_CHUNK) * KV_CHUNK * 2 * C; }

/* position t's keys k [C] and values v [C] into the cache */
static inline void kv_store(float *state, int C, int hs, int t, const float *k, const float *v) {
    float *c = kv_chunk(state, C, t), *vc = c + (size_t)KV_CHUNK * C;
    int l = t % KV_CHUNK;
    for (int i = 0; i < C; i++) c[(size_t)i * KV_CHUNK + l] = k[i];
    for (int h = 0; h < C / hs; h++) memcpy(vc + ((size_t)h * KV_CHUNK + l) * hs, v + h * hs, (size_t)hs * sizeof *v);
}

/* For heads h0 <= h < h1: s[h * ld + j] = q_h . k_hj for j < n, rounded up
 * to whole chunks (the lanes past n hold whatever the cache holds there:
 * the caller masks them); q holds the heads' queries, q_h at q + h * hs.
 * Chunk by chunk, so that the cache streams through once. */
static inline void kv_scores(float *s, int ld, float *state, int C, int hs, int h0, int h1, const float *q, int n) {
    for (int j0 = 0; j0 < n; j0 += KV_CHUNK)
        for (int h = h0; h < h1; h++) {
            const float *qh = q + (size_t)h * hs;
            for (int c = 0; c < KV_CHUNK; c += VN) { /* the chunk's positions, a register of them at a time */
                const float *k = kv_chunk(state, C, j0) + (size_t)h * hs * KV_CHUNK + c;
                vfn s0 = {0}, s1 = {0};
                int d = 0;
                for (; d + 2 <= hs; d += 2) { /* two running sums: half the FMA chain */
                    s0 += qh[d] * vfn_load(k + (size_t)d * KV_CHUNK);
                    s1 += qh[d + 1] * vfn_load(k + (size_t)(d + 1) * KV_CHUNK);
                }
                if (d < hs) s0 += qh[d] * vfn_load(k + (size_t)d * KV_CHUNK);
                vfn_store(s + (size_t)h * ld + j0 + c, s0 + s1);
            }
        }
}

/* For heads h0 <= h < h1: o[h * hs + 0:hs] = sum_{j < n} w[h * ld + j] v_hj,
 * chunk by chunk as kv_scores. */
static inline void kv_values(float *o, float *state, int C, int hs, int h0, int h1, const float *w, int ld, int n) {
    memset(o + (size_t)h0 * hs, 0, (size_t)(h1 - h0) * hs * sizeof *o);
    for (int j0 = 0; j0 < n; j0 += KV_CHUNK)
        for (int h = h0; h < h1; h++) {
            const float *v = kv_chunk(state, C, j0) + (size_t)KV_CHUNK * C + (size_t)h * KV_CHUNK * hs;
            const float *wh = w + (size_t)h * ld + j0;
            float *oh = o + (size_t)h * hs;
            for (int l = 0; l < KV_CHUNK && j0 + l < n; l++)
                for (int d = 0; d < hs; d++) oh[d] += wh[l] * v[(size_t)l * hs + d];
        }
}

#endif
