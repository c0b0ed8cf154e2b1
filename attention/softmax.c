/* Causal softmax attention, FlashAttention-2 style (ALGORITHMS.md section 1).
 *
 * Forward walks query tiles, and for each the key tiles up to the diagonal,
 * with an online max and sum; it saves only the per-row log-sum-exp
 * L [B, NH, T]. Backward recomputes each tile's probabilities from L. Work is
 * split over (batch, head) pairs, each owned by one thread: deterministic.
 * Per-thread scratch is a few tiles plus one head's keys and values (or
 * queries and output gradients), loaded once per head: O(T), never T x T. */
#include <math.h>
#include <omp.h>

#include "attention.h"
#include "kvcache.h"
#include "tile.h"

static int softmax_tensors(const AttnConfig *a, AttnTensor *out) { return 0; }

static size_t softmax_n_params(const AttnConfig *a) { return 0; }

static size_t softmax_n_saved(const AttnConfig *a, int B, int T) { return (size_t)B * a->n_head * T; }

static void softmax_init(const AttnConfig *a, float *params, Rng *r) {}

/* Row i of a score tile: keys j < n are visible. Turns scores into
 * exp(s - mx) in place (0 where masked) and returns their sum by lanes. */
static inline vfn exp_row(float *s, int n, float mx) {
    vfn sum = {0};
    for (int j = 0; j < TILE; j += VN) {
        vfn p = j < n ? tile_mask(vfn_exp(vfn_load(s + j) - mx), j, n) : (vfn){0};
        vfn_store(s + j, p);
        sum += p;
    }
    return sum;
}

/* The same row's largest visible score, by lanes (-inf where none). */
static inline vfn max_row(const float *s, int n) {
    vfn m = vfn_splat(-INFINITY);
    for (int j = 0; j < TILE && j < n; j += VN) {
        vfn x = vfn_select(tile_iota() + j < n, vfn_load(s + j), m);
        m = vfn_select(x > m, x, m);
    }
    return m;
}

#define GROUP 16 /* query rows the forward takes through a key tile together (tile_reduce16) */

static void softmax_forward(const AttnConfig *a, const float *params, const float *qkv, float *out,
                            float *saved, int B, int T) {
    const int NH = a->n_head, hs = a->head_size, C = a->n_embd, hp = tile_pad(hs);
    const size_t C3 = 3 * (size_t)C;
    const float scale = 1.0f / sqrtf((float)hs);
    #pragma omp parallel for schedule(static)
    for (int bh = 0; bh < B * NH; bh++) {
        int b = bh / NH, h = bh % NH;
        const float *q = qkv + attn_qkv_at(a, b, h, T), *k = q + C, *v = q + 2 * C;
        float *o = out + attn_out_at(a, b, h, T), *L = saved + (size_t)bh * T;
        int Tp = (T + TILE - 1) / TILE * TILE;
        float *Q = tile_scratch((size_t)TILE * (2 * hp + TILE + 2) + 2 * (size_t)Tp * hp);
        float *O = Q + TILE * hp, *S = O + TILE * hp, *m = S + TILE * TILE, *l = m + TILE;
        float *Kt = l + TILE, *V = Kt + (size_t)Tp * hp; /* the head's keys (transposed tiles) and values */
        head_load(V, NULL, v, C3, T, hs, hp);
        head_load(NULL, Kt, k, C3, T, hs, hp);
        for (int q0 = 0; q0 < T; q0 += TILE) {
            int nq = T - q0 < TILE ? T - q0 : TILE;
            tile_load(Q, NULL, q, C3, q0, nq, hs, hp);
            for (int i = 0; i < nq * hp; i++) Q[i] *= scale;
            memset(O, 0, (size_t)TILE * hp * sizeof *O);
            for (int i = 0; i < TILE; i++) {
                m[i] = -INFINITY;
                l[i] = 0.0f;
            }
            for (int k0 = 0; k0 < q0 + nq; k0 += TILE) {
                int nk = q0 + nq - k0 < TILE ? q0 + nq - k0 : TILE;
                /* GROUP rows at a time: their scores, maxima, exponentials and
                 * output update while the rows are in L1 */
                for (int r0 = 0; r0 < nq; r0 += GROUP) {
                    int nr = nq - r0 < GROUP ? nq - r0 : GROUP;
                    float *Sr = S + (size_t)r0 * TILE, *Or = O + (size_t)r0 * hp;
                    /* s_ij = scale q_i . k_j, then the rows' maxima, then their
                     * exponentials and sums, reduced 16 rows at a time */
                    vfn part[GROUP];
                    int n[GROUP];
                    for (int i = 0; i < GROUP; i++) {
                        n[i] = q0 + r0 + i - k0 + 1 < nk ? q0 + r0 + i - k0 + 1 : nk; /* causal: j <= i */
                        part[i] = vfn_splat(-INFINITY);
                    }
                    if (nr == GROUP && n[0] == TILE) { /* every key visible to every row: maxima from the registers */
                        for (int c0 = 0; c0 < TILE; c0 += 32)
                            for (int r = 0; r < GROUP; r += 8)
                                tile_block8x32_max(Sr + (size_t)r * TILE + c0, TILE, Q + (size_t)(r0 + r) * hp, hp, 1,
                                                   Kt + (size_t)k0 * hp + c0, TILE, hs, 0, part + r);
                    } else { /* the diagonal tile (or T's last): only the keys some row sees */
                        tile_mm(Sr, TILE, Q + (size_t)r0 * hp, hp, 1, Kt + (size_t)k0 * hp, TILE, nr, hs,
                                tile_pad(tile_seen(q0 - k0, r0, nr, nk)), 0);
                        for (int i = 0; i < nr; i++) part[i] = max_row(Sr + (size_t)i * TILE, n[i]);
                    }
                    vf16 mold = vf16_load(m + r0), mx = tile_reduce_rows(part, 1);
                    vf16 mnew = vf16_select(mx > mold, mx, mold), corr = vf16_exp(mold - mnew);
                    for (int i = 0; i < GROUP; i++) {
                        part[i] = i < nr ? exp_row(Sr + (size_t)i * TILE, n[i], mnew[i]) : (vfn){0};
                        if (i < nr && corr[i] != 1.0f)
                            for (int d = 0; d < hp; d++) Or[(size_t)i * hp + d] *= corr[i];
                    }
                    vf16_store(l + r0, vf16_load(l + r0) * corr + tile_reduce_rows(part, 0));
                    vf16_store(m + r0, mnew);
                    tile_mm(Or, hp, Sr, TILE, 1, V + (size_t)k0 * hp, hp, nr, tile_seen(q0 - k0, r0, nr, nk), hp,
                            1); /* o_i += sum_j p_ij v_j */
                }
            }
            for (int i = 0; i < nq; i++) {
                float inv = 1.0f / l[i];
                float *dst = o + (size_t)(q0 + i) * C;
                for (int d = 0; d < hs; d++) dst[d] = O[(size_t)i * hp + d] * inv;
                L[q0 + i] = m[i] + logf(l[i]);
            }
        }
    }
}

static void softmax_backward(const AttnConfig *a, const float *params, const float *qkv, const float *out,
                             const float *saved, const float *dout, float *dqkv, float *dparams, int B,
                             int T) {
    /* forward: o_i = sum_j p_ij v_j, p_ij = exp(s_ij - L_i), s_ij = scale q_i . k_j */
    const int NH = a->n_head, hs = a->head_size, C = a->n_embd, hp = tile_pad(hs);
    const size_t C3 = 3 * (size_t)C;
    const float scale = 1.0f / sqrtf((float)hs);
    #pragma omp parallel for schedule(static)
    for (int bh = 0; bh < B * NH; bh++) {
        int b = bh / NH, h = bh % NH;
        const float *q = qkv + attn_qkv_at(a, b, h, T), *k = q + C, *v = q + 2 * C;
        const float *o = out + attn_out_at(a, b, h, T), *dO = dout + attn_out_at(a, b, h, T);
        const float *L = saved + (size_t)bh * T;
        float *dq = dqkv + attn_qkv_at(a, b, h, T), *dk = dq + C, *dv = dq + 2 * C;
        int Tp = (T + TILE - 1) / TILE * TILE;
        float *K = tile_scratch((size_t)TILE * (5 * hp + 2 * TILE) + 3 * (size_t)Tp * hp + (size_t)Tp);
        float *Kt = K + TILE * hp, *Vt = Kt + TILE * hp, *dK = Vt + TILE * hp, *dV = dK + TILE * hp;
        float *P = dV + TILE * hp, *dS = P + TILE * TILE;
        /* the head's scaled queries, output gradients and query gradients */
        float *Qs = dS + TILE * TILE, *G = Qs + (size_t)Tp * hp, *dQ = G + (size_t)Tp * hp, *delta = dQ + (size_t)Tp * hp;
        head_load(Qs, NULL, q, C3, T, hs, hp);
        head_load(G, NULL, dO, (size_t)C, T, hs, hp);
        for (size_t i = 0; i < (size_t)Tp * hp; i++) Qs[i] *= scale;
        memset(dQ, 0, (size_t)Tp * hp * sizeof *dQ);
        for (int i = 0; i < T; i++) delta[i] = dot16(dO + (size_t)i * C, o + (size_t)i * C, hs); /* do_i . o_i */
        for (int k0 = 0; k0 < T; k0 += TILE) {
            int nk = T - k0 < TILE ? T - k0 : TILE;
            tile_load(K, Kt, k, C3, k0, nk, hs, hp);
            tile_load(NULL, Vt, v, C3, k0, nk, hs, hp);
            memset(dK, 0, (size_t)TILE * hp * sizeof *dK);
            memset(dV, 0, (size_t)TILE * hp * sizeof *dV);
            for (int q0 = k0; q0 < T; q0 += TILE) {
                int nq = T - q0 < TILE ? T - q0 : TILE;
                const float *Q = Qs + (size_t)q0 * hp, *Gq = G + (size_t)q0 * hp;
                /* on the diagonal in groups of rows (keys), over the keys
                 * (rows) they see: see tile_seen */
                int diag = q0 - k0;
                for (int g = 0, ng; g < nq; g += ng) {
                    ng = tile_group(diag, g, nq);
                    int cols = tile_pad(tile_seen(diag, g, ng, nk));
                    tile_mm(P + (size_t)g * TILE, TILE, Q + (size_t)g * hp, hp, 1, Kt, TILE, ng, hs, cols, 0); /* s_ij */
                    tile_mm(dS + (size_t)g * TILE, TILE, Gq + (size_t)g * hp, hp, 1, Vt, TILE, ng, hs, cols,
                            0); /* dp_ij = do_i . v_j */
                    for (int i = g; i < g + ng; i++) {
                        float *p = P + (size_t)i * TILE, *ds = dS + (size_t)i * TILE;
                        int n = q0 + i - k0 + 1 < nk ? q0 + i - k0 + 1 : nk;
                        exp_row(p, n, L[q0 + i]); /* p_ij, 0 where masked */
                        float di = delta[q0 + i];
                        for (int j = 0; j < cols; j++) ds[j] = p[j] * (ds[j] - di);
                    }
                }
                for (int g = 0, ng; g < nk; g += ng) { /* keys j.. take queries i >= j only */
                    ng = tile_group(diag, g, nk);
                    int i0 = diag ? 0 : g;
                    tile_mm(dV + (size_t)g * hp, hp, P + (size_t)i0 * TILE + g, 1, TILE, Gq + (size_t)i0 * hp, hp, ng,
                            nq - i0, hp, 1); /* dv_j += sum_i p_ij do_i */
                    tile_mm(dK + (size_t)g * hp, hp, dS + (size_t)i0 * TILE + g, 1, TILE, Q + (size_t)i0 * hp, hp, ng,
                            nq - i0, hp, 1); /* dk_j += sum_i ds_ij scale q_i */
                }
                for (int g = 0, ng; g < nq; g += ng) {
                    ng = tile_group(diag, g, nq);
                    tile_mm(dQ + (size_t)(q0 + g) * hp, hp, dS + (size_t)g * TILE, TILE, 1, K, hp, ng,
                            tile_seen(diag, g, ng, nk), hp, 1); /* dq_i += sum_j ds_ij k_j */
                }
            }
            for (int j = 0; j < nk; j++) {
                float *dkj = dk + (size_t)(k0 + j) * C3, *dvj = dv + (size_t)(k0 + j) * C3;
                for (int d = 0; d < hs; d++) {
                    dkj[d] += dK[(size_t)j * hp + d];
                    dvj[d] += dV[(size_t)j * hp + d];
                }
            }
        }
        for (int i = 0; i < T; i++) { /* dq_i = scale sum_j ds_ij k_j */
            float *dst = dq + (size_t)i * C3;
            for (int d = 0; d < hs; d++) dst[d] += scale * dQ[(size_t)i * hp + d];
        }
    }
}

/* Decoding: the state is the K and V cache (kvcache.h). */
static size_t softmax_n_state(const AttnConfig *a, int T) { return kv_floats(a->n_embd, T); }

/* The heads are shared out over the threads, a contiguous range each (the
 * same arithmetic per head whatever the thread count). */
static void softmax_decode(const AttnConfig *a, const float *params, const float *qkv_t, float *state, int t,
                           float *out_t) {
    const int C = a->n_embd, hs = a->head_size, NH = a->n_head, n = t + 1;
    const int ld = (n + KV_CHUNK - 1) / KV_CHUNK * KV_CHUNK;
    kv_store(state, C, hs, t, qkv_t + C, qkv_t + 2 * C);
    if (!out_t) return;
    const float scale = 1.0f / sqrtf((float)hs);
    #pragma omp parallel
    {
        int nt = omp_get_num_threads(), id = omp_get_thread_num();
        int h0 = NH * id / nt, h1 = NH * (id + 1) / nt;
        float *w = tile_scratch((size_t)NH * ld); /* w[h][j] */
        kv_scores(w, ld, state, C, hs, h0, h1, qkv_t, n); /* q_h . k_hj */
        for (int h = h0; h < h1; h++) { /* p_hj = exp(scale s_hj - max_h) / sum */
            float *wh = w + (size_t)h * ld;
            for (int j = 0; j < n; j++) wh[j] *= scale;
            float mx = row_max(wh, n);
            for (int j = n; j < ld; j++) wh[j] = -INFINITY;
            vfn acc = {0};
            for (int j = 0; j < ld; j += VN) {
                vfn e = vfn_exp(vfn_load(wh + j) - mx);
                vfn_store(wh + j, e);
                acc += e;
            }
            float inv = 1.0f / vfn_lanes_sum(acc);
            for (int j = 0; j < n; j++) wh[j] *= inv;
        }
        kv_values(out_t, state, C, hs, h0, h1, w, ld, n); /* o_h = sum_j p_hj v_hj */
    }
}

const AttentionKind attention_softmax = {
    "softmax", softmax_tensors, softmax_n_params, softmax_n_saved, softmax_init, softmax_forward, softmax_backward,
    softmax_n_state, softmax_decode, attn_dense_flops,
};
