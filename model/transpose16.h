/* A 16 x 16 transpose of 32-bit elements in AVX-512 registers, for the
 * packing that transposes (model/matmul.c, model/amx.c). x86 only. */
#ifndef MODEL_TRANSPOSE16_H
#define MODEL_TRANSPOSE16_H

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>

/* r[i][j] becomes r[j][i]: 32-bit, 64-bit and two 128-bit-lane interleaves */
__attribute__((target("avx512f"))) static inline void transpose16(__m512 r[16]) {
    __m512 a[16], b[16], c[16];
    for (int i = 0; i < 8; i++) {
        a[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
        a[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
    }
    for (int i = 0; i < 4; i++)
        for (int h = 0; h < 2; h++) {
            __m512d x = _mm512_castps_pd(a[4 * i + h]), y = _mm512_castps_pd(a[4 * i + h + 2]);
            b[4 * i + 2 * h] = _mm512_castpd_ps(_mm512_unpacklo_pd(x, y));
            b[4 * i + 2 * h + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(x, y));
        }
    for (int i = 0; i < 2; i++)
        for (int j = 0; j < 4; j++) {
            c[8 * i + j] = _mm512_shuffle_f32x4(b[8 * i + j], b[8 * i + j + 4], 0x88);
            c[8 * i + j + 4] = _mm512_shuffle_f32x4(b[8 * i + j], b[8 * i + j + 4], 0xdd);
        }
    for (int j = 0; j < 8; j++) {
        r[j] = _mm512_shuffle_f32x4(c[j], c[j + 8], 0x88);
        r[j + 8] = _mm512_shuffle_f32x4(c[j], c[j + 8], 0xdd);
    }
}
#endif

#endif
