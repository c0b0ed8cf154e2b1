#include "attention.h"

#include <string.h>

static const AttentionKind *const kinds[] = {&attention_softmax, &attention_polynomial, &attention_polysketch};

double attn_dense_flops(const AttnConfig *a, int T) { return 2.0 * 2.0 * a->n_embd * (T / 2.0); }

const AttentionKind *attention_find(const char *name) {
    for (size_t i = 0; i < sizeof kinds / sizeof *kinds; i++)
        if (strcmp(kinds[i]->name, name) == 0) return kinds[i];
    return NULL;
}
