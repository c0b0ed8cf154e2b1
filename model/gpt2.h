/* GPT-2: token and position embeddings, pre-LN blocks (attention through
 * the AttentionKind table, GELU MLP), final LayerNorm, LM head tied to the
 * token embedding. Forward and backward by hand.
 *
 * Parameters live in one allocation cut by a size table (ParamTensors, the
 * same layout for gradients and optimiser moments); activations in another,
 * sized for batch_size x seq_len. Linear weights are [out, in]. */
#ifndef MODEL_GPT2_H
#define MODEL_GPT2_H

#include <stddef.h>
#include <stdint.h>

#include "../attention/attention.h"
#include "../common/err.h"

typedef struct {
    int n_layer, n_head, n_embd, block_size, vocab_size;
    AttnConfig attn;
    const AttentionKind *kind;
    int bf16;    /* linear layers' products in bfloat16 (fp32 accumulation and weights) */
    int recompute; /* backward computes the LayerNorm and GELU outputs again instead of
                    * keeping every layer's: 6 of the 16 floats a layer keeps per
                    * position and unit of width */
    int inference; /* forward only (eval, sample): no gradients are allocated */
    float dropout; /* where GPT-2 has resid_pdrop and embd_pdrop: the embeddings' sum and
                    * each residual branch's output projection, in forwards made while
                    * GPT2.training is set; 0: none */
    int head_rows; /* the LM head and the loss run this many positions at a time, so the
                    * logits of only that many are held (at long context they would
                    * outweigh the rest of the activations); 0: all B*T at once */
} GPT2Config;

/* head_rows as training uses it: a multiple of the SGEMM's K slice (256 or
 * 512), so that the gradients come out bit for bit as with all rows at once */
#define GPT2_HEAD_ROWS 2048

#define N_PARAM_TENSORS 17
typedef struct {
    float *wte;      /* [V, C] */
    float *wpe;      /* [maxT, C] */
    float *ln1w;     /* [L, C] */
    float *ln1b;     /* [L, C] */
    float *qkvw;     /* [L, 3C, C] */
    float *qkvb;     /* [L, 3C] */
    float *attprojw; /* [L, C, C] */
    float *attprojb; /* [L, C] */
    float *ln2w;     /* [L, C] */
    float *ln2b;     /* [L, C] */
    float *fcw;      /* [L, 4C, C] */
    float *fcb;      /* [L, 4C] */
    float *fcprojw;  /* [L, C, 4C] */
    float *fcprojb;  /* [L, C] */
    float *lnfw;     /* [C] */
    float *lnfb;     /* [C] */
    float *attn;     /* [L, kind's n_params] */
} ParamTensors;

#define N_ACT_TENSORS 21
typedef struct {
    float *encoded;   /* [B, T, C] */
    float *ln1;       /* [L, B, T, C]; with recompute [B, T, C], as ln2 and fch_gelu */
    float *ln1_mean;  /* [L, B, T] */
    float *ln1_rstd;  /* [L, B, T] */
    float *qkv;       /* [L, B, T, 3C] */
    float *atty;      /* [L, B, T, C] */
    float *attsaved;  /* [L, kind's n_saved(B, T)] */
    float *attproj;   /* [B, T, C]: one layer's (backward does not read it), as fcproj */
    float *residual2; /* [L, B, T, C] */
    float *ln2;       /* [L, B, T, C] */
    float *ln2_mean;  /* [L, B, T] */
    float *ln2_rstd;  /* [L, B, T] */
    float *fch;       /* [L, B, T, 4C] */
    float *fch_gelu;  /* [L, B, T, 4C] */
    float *fcproj;    /* [B, T, C] */
    float *residual3; /* [L, B, T, C] */
    float *lnf;       /* [B, T, C] */
    float *lnf_mean;  /* [B, T] */
    float *lnf_rstd;  /* [B, T] */
    float *logits;    /* [rows, gpt2_logits_ld(V)], rows = B*T or head_rows (gpt2_logits); dlogits after
                       * backward */
    float *losses;    /* [B, T] */
} ActTensors;

/* One layer's activation gradients, reused by every layer in backward. */
typedef struct {
    float *dres;   /* [B, T, C] gradient of the residual stream */
    float *dC1;    /* [B, T, C] */
    float *dC2;    /* [B, T, C] */
    float *dqkv;   /* [B, T, 3C] */
    float *d4C;    /* [B, T, 4C] */
    float *lse;    /* [B, T] */
} GradScratch;

typedef struct {
    GPT2Config cfg;
    size_t param_sizes[N_PARAM_TENSORS], n_params;
    float *params, *grads;
    ParamTensors p, g;
    int B, T;                  /* the shape activations were sized for */
    size_t act_sizes[N_ACT_TENSORS], n_acts;
    float *acts;
    ActTensors a;
    float *scratch_mem;
    GradScratch d;
    int *inputs, *targets;     /* [B, T] of the last forward */
    int fwd_B, fwd_T;          /* its shape */
    int logits_from;           /* a.logits row 0 is this position of the last forward */
    int training;              /* forwards apply dropout (cfg.dropout > 0) ... */
    uint64_t dropout_key;      /* ... with masks drawn from this key (dropout_apply) */
    int fwd_dropout;           /* the last forward applied dropout, with fwd_key */
    uint64_t fwd_key;
    int grads_stale;           /* set by gpt2_update: the linear layers' weight gradients (see
                                  gpt2_update) still hold the last step's; the next backward's
                                  products write them instead of adding to them */
} GPT2;

/* Fills cfg->attn from the model shape; the attention keys are set by the caller. */
void gpt2_config_finish(GPT2Config *cfg);

/* Floats gpt2_build allocates for parameters, gradients, activations and
 * their gradients at B x T; n_params (if given) gets the parameters'. */
size_t gpt2_floats(const GPT2Config *cfg, int B, int T, size_t *n_params);

/* Allocates parameters, gradients and activations for batches up to B x T. */
int gpt2_build(GPT2 *m, const GPT2Config *cfg, int B, int T, Err *e);
void gpt2_free(GPT2 *m);

/* GPT-2's initialisation: N(0, 0.02), residual projections scaled by
 * 1/sqrt(2 n_layer), zero biases, unit LayerNorm gains. */
void gpt2_init(GPT2 *m, uint64_t seed);

/* Forward over inputs [B, T] (B, T at most the built shape). With targets,
 * returns the mean cross-entropy loss; without, only fills the logits. The
 * logits of every position are kept when head_rows is 0 or at least B*T;
 * else those of the last head_rows positions (see gpt2_logits). */
float gpt2_forward(GPT2 *m, const int *inputs, const int *targets, int B, int T);

/* The row stride of a.logits: the vocabulary rounded up to 16 floats, so
 * that each row starts 64-byte aligned and the LM head's forward can write
 * them past the caches (sgemm_stream) */
static inline int gpt2_logits_ld(int vocab_size) { return (vocab_size + 15) / 16 * 16; }

/* The logits [V] of position pos (b*T + t) of the last forward, or NULL
 * when they are not held. */
const float *gpt2_logits(const GPT2 *m, int pos);

/* Backward of the last forward (which had targets), scaling the loss
 * gradient by dloss_scale (1 / grad_accum); accumulates into m->grads
 * (zero after gpt2_build, and in effect after gpt2_update: see there). With head_rows below B*T
 * it computes the LM head's logits once more; gpt2_forward_backward does
 * not. */
void gpt2_backward(GPT2 *m, float dloss_scale);

/* gpt2_forward with targets and gpt2_backward in one (the same numbers, bit
 * for bit): each chunk of head_rows positions goes through the LM head, the
 * loss and their gradient while its logits are at hand. Returns the loss. */
float gpt2_forward_backward(GPT2 *m, const int *inputs, const int *targets, int B, int T, float dloss_scale);

/* One AdamW step over every parameter: weight decay on the 2-D weights
 * only (as nanoGPT), adam_m and adam_v in the parameter layout, gradients
 * multiplied by grad_scale (clipping) and left zeroed for the next step;
 * except the linear layers' weights (wte, c_attn, attn.c_proj, mlp.c_fc,
 * mlp.c_proj: all but a few parameters), whose gradients stay as they are
 * and are marked stale (m->grads_stale): the next backward's weight-gradient
 * products write them rather than add to them. The same numbers, and two
 * passes over 4 bytes a parameter fewer: AdamW's writing of zeros and the
 * products' reading of them. */
struct AdamW;
void gpt2_update(GPT2 *m, float *adam_m, float *adam_v, const struct AdamW *o, int t, float grad_scale);

/* Training FLOPs per token (forward + backward) at context T. */
double gpt2_flops_per_token(const GPT2 *m, int T);

/* Parameter tensors under Hugging Face GPT-2 names, for checkpoints; the
 * attention kind's own follow as transformer.h.<l>.attn.<name>. */
typedef struct {
    char name[96];
    size_t offset;        /* floats from the start of params */
    int ndim, shape[2];   /* as Hugging Face stores it */
    int transposed;       /* stored here as [shape1, shape0] (Conv1D weights) */
    int decay;            /* AdamW weight decay applies */
    int trainable;        /* 0: fixed (random sketches): no update */
    int own;              /* the attention kind's own (transformer.h.<l>.attn.<name>) */
    char alt[96];         /* own: the tensor standing in for it in another kind's checkpoint, or "" */
} TensorInfo;

int gpt2_n_tensors(const GPT2 *m);
void gpt2_tensor_info(const GPT2 *m, int i, TensorInfo *t);

#endif
