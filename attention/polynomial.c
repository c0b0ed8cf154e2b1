/* Exact causal polynomial attention of even degree p (ALGORITHMS.md section 2):
 *   q^ = LN(q), k^ = LN(k) (one LayerNorm over the head dimension, shared by
 *   q, k and every head of the layer), w_ij = (q^_i . k^_j)^p,
 *   D_i = 1 + sum_{j<=i} w_ij, o_i = sum_j w_ij v_j / D_i.
 * Tiled like softmax but without a running max (weights are non-negative);
 * saves only D [B, NH, T] and recomputes the tiles in backward. Per-thread
 * scratch holds the normalised q and k of one head: O(T), never T x T. */
#include <math.h>
#include <omp.h>

#include "attention.h"
#include "kvcache.h"
#include "lnorm.h"
#include "tile.h"

static int poly_tensors(const AttnConfig *a, AttnTensor *out) {
    int hs = a->head_size;
    out[0] = (AttnTensor){"qk_norm.weight", 0, hs, 0, 1, 0, NULL};
    out[1] = (AttnTensor){"qk_norm.bias", (size_t)hs, hs, 0, 1, 0, NULL};
    return 2;
}

static size_t poly_n_params(const AttnConfig *a) { return 2 * (size_t)a->head_size; }

static size_t poly_n_saved(const AttnConfig *a, int B, int T) { return (size_t)B * a->n_head * T; }

static void poly_init(const AttnConfig *a, float *params, Rng *r) {
    for (int i = 0; i < a->head_size; i++) {
        params[i] = 1.0f;
        params[a->head_size + i] = 0.0f;
    }
}

/* LN of every row of one head of x ([T, stride]) into out [T][hp]. */
static void ln_rows(float *out, float *mean, float *rstd, const float *x, size_t stride, int T, int hs, int hp,
                    const float *gain, const float *bias) {
    for (int t = 0; t < T; t++) {
        float *o = out + (size_t)t * hp;
        ln_row(o, x + (size_t)t * stride, gain, bias, hs, mean ? mean + t : NULL, rstd ? rstd + t : NULL);
        for (int d = hs; d < hp; d++) o[d] = 0.0f;
    }
}

/* Kt[d][j] = K[k0 + j][d], zero beyond n. */
static void transpose_rows(float *Kt, const float *K, int k0, int n, int hs, int hp) {
    memset(Kt, 0, (size_t)hp * TILE * sizeof *Kt);
    for (int j = 0; j < n; j++)
        for (int d = 0; d < hs; d++) Kt[(size_t)d * TILE + j] = K[(size_t)(k0 + j) * hp + d];
}

static void poly_forward(const AttnConfig *a, const float *params, const float *qkv, float *out, float *saved,
                         int B, int T) {
    const int NH = a->n_head, hs = a->head_size, C = a->n_embd, hp = tile_pad(hs), p = a->degree;
    const size_t C3 = 3 * (size_t)C;
    #pragma omp parallel for schedule(static)
    for (int bh = 0; bh < B * NH; bh++) {
        int b = bh / NH, h = bh % NH;
        const float *q = qkv + attn_qkv_at(a, b, h, T), *k = q + C, *v = q + 2 * C;
        float *o = out + attn_out_at(a, b, h, T), *D = saved + (size_t)bh * T;
        int Tp = (T + TILE - 1) / TILE * TILE;
        /* the head's normalised queries and keys, the keys again as transposed
         * tiles (tile k0 at Kt + k0 hp), and its values: loaded once */
        float *Qn = tile_scratch(4 * (size_t)Tp * hp + (size_t)TILE * (hp + TILE + 1));
        float *Kn = Qn + (size_t)Tp * hp, *Kt = Kn + (size_t)Tp * hp, *V = Kt + (size_t)Tp * hp;
        float *O = V + (size_t)Tp * hp, *S = O + TILE * hp, *acc = S + TILE * TILE;
        ln_rows(Qn, NULL, NULL, q, C3, T, hs, hp, params, params + hs);
        ln_rows(Kn, NULL, NULL, k, C3, T, hs, hp, params, params + hs);
        for (int k0 = 0; k0 < T; k0 += TILE)
            transpose_rows(Kt + (size_t)k0 * hp, Kn, k0, T - k0 < TILE ? T - k0 : TILE, hs, hp);
        head_load(V, NULL, v, C3, T, hs, hp);
        for (int q0 = 0; q0 < T; q0 += TILE) {
            int nq = T - q0 < TILE ? T - q0 : TILE;
            memset(O, 0, (size_t)TILE * hp * sizeof *O);
            memset(acc, 0, TILE * sizeof *acc);
            for (int k0 = 0; k0 < q0 + nq; k0 += TILE) {
                int nk = q0 + nq - k0 < TILE ? q0 + nq - k0 : TILE;
                poly_tile_forward(O, acc, S, Qn + (size_t)q0 * hp, hp, Kt + (size_t)k0 * hp, V + (size_t)k0 * hp, nq, nk,
                                  q0 - k0, hs, hp, p);
            }
            for (int i = 0; i < nq; i++) {
                float Di = 1.0f + acc[i], inv = 1.0f / Di;
                float *dst = o + (size_t)(q0 + i) * C;
                for (int d = 0; d < hs; d++) dst[d] = O[(size_t)i * hp + d] * inv;
                D[q0 + i] = Di;
            }
        }
    }
}

static void poly_backward(const AttnConfig *a, const float *params, const float *qkv, const float *out,
                          const float *saved, const float *dout, float *dqkv, float *dparams, int B, int T) {
    /* forward: o_i = sum_j w_ij v_j / D_i, w_ij = x_ij^p, x_ij = q^_i . k^_j, D_i = 1 + sum_j w_ij */
    const int NH = a->n_head, hs = a->head_size, C = a->n_embd, hp = tile_pad(hs), p = a->degree;
    const size_t C3 = 3 * (size_t)C, np = 2 * (size_t)hs;
    float *part = attn_partials((size_t)B * NH * np);
    #pragma omp parallel for schedule(static)
    for (int bh = 0; bh < B * NH; bh++) {
        int b = bh / NH, h = bh % NH;
        const float *q = qkv + attn_qkv_at(a, b, h, T), *k = q + C, *v = q + 2 * C;
        const float *o = out + attn_out_at(a, b, h, T), *dO = dout + attn_out_at(a, b, h, T);
        const float *D = saved + (size_t)bh * T;
        float *dq = dqkv + attn_qkv_at(a, b, h, T), *dk = dq + C, *dv = dq + 2 * C, *pg = part + bh * np;
        int Tp = (T + TILE - 1) / TILE * TILE;
        /* the head's normalised queries and keys, their gradients' and the
         * output gradients: loaded once */
        float *Qn = tile_scratch(4 * (size_t)Tp * hp + 5 * (size_t)T + (size_t)TILE * (4 * hp + 3 * TILE));
        float *Kn = Qn + (size_t)Tp * hp, *dQn = Kn + (size_t)Tp * hp, *G = dQn + (size_t)Tp * hp;
        float *mq = G + (size_t)Tp * hp, *rq = mq + T, *mk = rq + T, *rk = mk + T, *delta = rk + T;
        float *Kt = delta + T, *Vt = Kt + TILE * hp, *dKn = Vt + TILE * hp, *dV = dKn + TILE * hp;
        float *X = dV + TILE * hp, *dX = X + TILE * TILE, *P = dX + TILE * TILE;
        ln_rows(Qn, mq, rq, q, C3, T, hs, hp, params, params + hs);
        ln_rows(Kn, mk, rk, k, C3, T, hs, hp, params, params + hs);
        head_load(G, NULL, dO, (size_t)C, T, hs, hp);
        memset(dQn, 0, (size_t)Tp * hp * sizeof *dQn);
        for (int i = 0; i < T; i++) delta[i] = dot16(dO + (size_t)i * C, o + (size_t)i * C, hs); /* g_i . o_i */
        for (int k0 = 0; k0 < T; k0 += TILE) {
            int nk = T - k0 < TILE ? T - k0 : TILE;
            transpose_rows(Kt, Kn, k0, nk, hs, hp);
            tile_load(NULL, Vt, v, C3, k0, nk, hs, hp);
            memset(dKn, 0, (size_t)TILE * hp * sizeof *dKn);
            memset(dV, 0, (size_t)TILE * hp * sizeof *dV);
            for (int q0 = k0; q0 < T; q0 += TILE) {
                int nq = T - q0 < TILE ? T - q0 : TILE;
                poly_tile_backward(dQn + (size_t)q0 * hp, dKn, dV, X, dX, P, Qn + (size_t)q0 * hp, Kn + (size_t)k0 * hp,
                                   Kt, G + (size_t)q0 * hp, Vt, delta + q0, D + q0, nq, nk, q0 - k0, hs, hp, hs, hp, p);
            }
            for (int j = 0; j < nk; j++) {
                size_t t = (size_t)(k0 + j);
                ln_row_backward(dk + t * C3, pg, pg + hs, dKn + (size_t)j * hp, k + t * C3, params, mk[t], rk[t], hs);
                for (int d = 0; d < hs; d++) dv[t * C3 + d] += dV[(size_t)j * hp + d];
            }
        }
        for (int t = 0; t < T; t++)
            ln_row_backward(dq + (size_t)t * C3, pg, pg + hs, dQn + (size_t)t * hp, q + (size_t)t * C3, params, mq[t],
                            rq[t], hs);
    }
    for (int bh = 0; bh < B * NH; bh++)
        for (size_t i = 0; i < np; i++) dparams[i] += part[bh * np + i];
}

/* Decoding: the state is the cache of normalised keys and values (kvcache.h). */
static size_t poly_n_state(const AttnConfig *a, int T) { return kv_floats(a->n_embd, T); }

/* Heads over the threads as in softmax_decode: the same arithmetic per head. */
static void poly_decode(const AttnConfig *a, const float *params, const float *qkv_t, float *state, int t,
                        float *out_t) {
    const int C = a->n_embd, hs = a->head_size, NH = a->n_head, p = a->degree, n = t + 1;
    const int ld = (n + KV_CHUNK - 1) / KV_CHUNK * KV_CHUNK;
    float *kn = tile_scratch((size_t)C);
    for (int h = 0; h < NH; h++) ln_row(kn + h * hs, qkv_t + C + h * hs, params, params + hs, hs, NULL, NULL);
    kv_store(state, C, hs, t, kn, qkv_t + 2 * C);
    if (!out_t) return;
    #pragma omp parallel
    {
        int nt = omp_get_num_threads(), id = omp_get_thread_num();
        int h0 = NH * id / nt, h1 = NH * (id + 1) / nt;
        float *qn = tile_scratch((size_t)NH * (hs + ld + 1)); /* q^[h][hs], then w[h][ld], then sum[h] */
        float *w = qn + (size_t)NH * hs, *sum = w + (size_t)NH * ld;
        for (int h = h0; h < h1; h++) ln_row(qn + h * hs, qkv_t + h * hs, params, params + hs, hs, NULL, NULL);
        kv_scores(w, ld, state, C, hs, h0, h1, qn, n); /* x_hj = q^_h . k^_hj */
        for (int h = h0; h < h1; h++) { /* w_hj = x_hj^p, 16 at a time (0 past n) */
            float *wh = w + (size_t)h * ld;
            vfn acc = {0};
            for (int j = 0; j < n; j += VN) {
                vfn x = tile_mask(vfn_powi(vfn_load(wh + j), p), j, n);
                vfn_store(wh + j, x);
                acc += x;
            }
            sum[h] = vfn_lanes_sum(acc);
        }
        kv_values(out_t, state, C, hs, h0, h1, w, ld, n);
        for (int h = h0; h < h1; h++)
            for (int d = 0; d < hs; d++) out_t[h * hs + d] /= 1.0f + sum[h];
    }
}

const AttentionKind attention_polynomial = {
    "polynomial", poly_tensors, poly_n_params, poly_n_saved, poly_init, poly_forward, poly_backward,
    poly_n_state, poly_decode, attn_dense_flops,
};
