/* servelab C kernels: image preprocessing and a multi-layer LSTM forward pass.
 *
 * This one file is compiled twice by ffi/_build.py (cffi, API mode):
 *
 *   _kernels_release   cffi releases the GIL around every call into C (its default), and
 *                      these functions never take it back: other Python threads run meanwhile.
 *   _kernels_hold      compiled with -DSERVELAB_HOLD_GIL: each function re-acquires the GIL
 *                      first thing (PyGILState_Ensure) and releases it last thing, so the whole
 *                      computation runs with the GIL held, like a C extension that never
 *                      releases it.  Other Python threads are stalled for the call's duration.
 *
 * Python.h is already included by the cffi-generated wrapper that #includes this text.
 * The functions touch no Python object; they allocate with malloc and return a negative value
 * on failure (bad arguments -1, out of memory -2).
 */

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#ifdef SERVELAB_HOLD_GIL
#define SL_ENTER PyGILState_STATE sl_gil_state_ = PyGILState_Ensure();
#define SL_LEAVE PyGILState_Release(sl_gil_state_);
#define SL_HOLDS_GIL 1
#else
#define SL_ENTER
#define SL_LEAVE
#define SL_HOLDS_GIL 0
#endif

#ifndef SERVELAB_SOURCE_HASH
#define SERVELAB_SOURCE_HASH "unknown"
#endif

int sl_holds_gil(void) { return SL_HOLDS_GIL; }

const char *sl_source_hash(void) { return SERVELAB_SOURCE_HASH; }

/* uint8 images (n, h, w, c) -> float32 (n, c, h, w), dst = (src / 255 - mean[ch]) / std[ch].
 * The arithmetic is float32 in the same order as the torch reference
 * (x.float() / 255.0, then (x - mean) / std), so results are bit-identical. */
static int sl_preprocess_images_impl(const uint8_t *src, float *dst, int64_t n, int64_t h,
                                     int64_t w, int64_t c, const float *mean, const float *std)
{
    if (n < 0 || h < 0 || w < 0 || c < 1 || c > 64) return -1;
    const int64_t plane = h * w;
    for (int64_t img = 0; img < n; img++) {
        const uint8_t *s = src + img * plane * c;
        float *d = dst + img * plane * c;
        for (int64_t ch = 0; ch < c; ch++) {
            const float m = mean[ch], sd = std[ch];
            float *dc = d + ch * plane;
            for (int64_t p = 0; p < plane; p++) {
                float v = (float)s[p * c + ch] / 255.0f;
                dc[p] = (v - m) / sd;
            }
        }
    }
    return 0;
}

int sl_preprocess_images(const uint8_t *src, float *dst, int64_t n, int64_t h, int64_t w,
                         int64_t c, const float *mean, const float *std)
{
    SL_ENTER
    int rc = sl_preprocess_images_impl(src, dst, n, h, w, c, mean, std);
    SL_LEAVE
    return rc;
}

/* The hot loops get an x86-64-v3 (AVX2 + FMA) clone chosen at load time when the CPU has it;
 * the default clone runs everywhere.  FMA contraction changes rounding by ~1e-7 only. */
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__)
#define SL_CLONES __attribute__((target_clones("arch=x86-64-v3", "default")))
#else
#define SL_CLONES
#endif

/* exp(x) for float32, branchless so that loops calling it vectorize (libm's expf does not):
 * x = n ln2 + r, |r| <= ln2 / 2, exp(r) by a degree-6 Taylor polynomial (relative error
 * < 2e-7 over the range), times 2^n assembled in the exponent bits.  Inputs are clamped to
 * [-87, 88] (results below 1.6e-38 are flushed towards that bound, harmless for the gates). */
static inline float sl_exp(float x)
{
    const float shifter = 12582912.0f; /* 1.5 * 2^23: adding it rounds to an integer */
    x = x < -87.0f ? -87.0f : x; /* if-converted to min/max with -fno-trapping-math */
    x = x > 88.0f ? 88.0f : x;
    float t = x * 1.44269504088896341f + shifter;
    float n = t - shifter;
    float r = x - n * 0.693145751953125f;      /* ln2, high bits (exact product) */
    r = r - n * 1.428606765330187e-06f;         /* ln2, low bits */
    float p = 1.0f + r * (1.0f + r * (0.5f + r * (1.0f / 6.0f + r * (1.0f / 24.0f
              + r * (1.0f / 120.0f + r * (1.0f / 720.0f))))));
    int32_t bits = ((int32_t)n + 127) * (1 << 23);
    float scale;
    memcpy(&scale, &bits, sizeof scale);
    return p * scale;
}

static inline float sl_sigmoid(float x) { return 1.0f / (1.0f + sl_exp(-x)); }

/* tanh(x) = 2 sigmoid(2x) - 1 (absolute error ~1e-7 near 0, where tanh itself is small) */
static inline float sl_tanh(float x) { return 2.0f / (1.0f + sl_exp(-2.0f * x)) - 1.0f; }

/* y[0:m] += a * x[0:m]  (vectorizable without reassociation) */
static inline void sl_axpy(float *restrict y, const float *restrict x, float a, int64_t m)
{
    for (int64_t j = 0; j < m; j++) y[j] += a * x[j];
}

/* y[0:m] += sum_k v[k] * w[k, 0:m] for row-major w (n, m): four rows per pass over y, so y is
 * loaded and stored a quarter as often as with one axpy per row. */
static inline void sl_gemv_t(float *restrict y, const float *restrict w, const float *restrict v,
                             int64_t n, int64_t m)
{
    int64_t k = 0;
    for (; k + 4 <= n; k += 4) {
        const float *w0 = w + k * m, *w1 = w0 + m, *w2 = w1 + m, *w3 = w2 + m;
        const float a0 = v[k], a1 = v[k + 1], a2 = v[k + 2], a3 = v[k + 3];
        for (int64_t j = 0; j < m; j++)
            y[j] += (a0 * w0[j] + a1 * w1[j]) + (a2 * w2[j] + a3 * w3[j]);
    }
    for (; k < n; k++) sl_axpy(y, w + k * m, v[k], m);
}

/* Number of floats in the packed parameter buffer (see sl_lstm_run). */
int64_t sl_lstm_param_count(int64_t input_size, int64_t hidden, int64_t layers,
                            int64_t out_features)
{
    int64_t g = 4 * hidden, total = 0;
    for (int64_t l = 0; l < layers; l++) {
        int64_t in = l == 0 ? input_size : hidden;
        total += in * g + hidden * g + g;
    }
    return total + hidden * out_features + out_features;
}

/* One LSTM layer over steps [0, steps) for every batch element.
 * x: (batch, steps, in); y: (batch, steps, hidden) or NULL; h, c: (batch, hidden), updated.
 * w_ih_t: (in, 4H), w_hh_t: (hidden, 4H), bias: (4H) = b_ih + b_hh; gate order i, f, g, o. */
SL_CLONES static void sl_lstm_layer(const float *restrict x, float *restrict y,
                                    float *restrict h, float *restrict c, int64_t batch,
                                    int64_t steps, int64_t in, int64_t hidden,
                                    const float *restrict w_ih_t, const float *restrict w_hh_t,
                                    const float *restrict bias, float *restrict gates)
{
    const int64_t g4 = 4 * hidden;
    for (int64_t b = 0; b < batch; b++) {
        float *hb = h + b * hidden, *cb = c + b * hidden;
        for (int64_t t = 0; t < steps; t++) {
            const float *xt = x + (b * steps + t) * in;
            memcpy(gates, bias, (size_t)g4 * sizeof(float));
            sl_gemv_t(gates, w_ih_t, xt, in, g4);
            sl_gemv_t(gates, w_hh_t, hb, hidden, g4);
            for (int64_t j = 0; j < hidden; j++) {
                float ig = sl_sigmoid(gates[j]);
                float fg = sl_sigmoid(gates[hidden + j]);
                float gg = sl_tanh(gates[2 * hidden + j]);
                float og = sl_sigmoid(gates[3 * hidden + j]);
                float cn = fg * cb[j] + ig * gg;
                cb[j] = cn;
                hb[j] = og * sl_tanh(cn);
            }
            if (y != NULL) memcpy(y + (b * steps + t) * hidden, hb, (size_t)hidden * sizeof(float));
        }
    }
}

/* Run `steps` time steps of a stacked LSTM (batch first), then optionally the linear head.
 *
 * params: packed float32, per layer l: W_ih^T (in_l, 4H), W_hh^T (H, 4H), b_ih + b_hh (4H);
 *         then the head: W^T (H, out_features), b (out_features).
 * x: (batch, steps, input_size); h, c: (layers, batch, hidden), the carried state, updated in
 * place (zeros for a fresh sequence).  With with_head != 0, out (batch, out_features) receives
 * head(h[layers - 1]).  steps may be 0 (head only).  Returns 0, or -1 / -2 on error. */
static int sl_lstm_run_impl(const float *params, int64_t input_size, int64_t hidden,
                            int64_t layers, int64_t out_features, const float *x, int64_t batch,
                            int64_t steps, float *h, float *c, int with_head, float *out)
{
    if (input_size < 1 || hidden < 1 || layers < 1 || batch < 0 || steps < 0) return -1;
    if (with_head && (out_features < 1 || out == NULL)) return -1;
    const int64_t g4 = 4 * hidden;
    float *gates = malloc((size_t)g4 * sizeof(float));
    float *buf[2] = {NULL, NULL};
    if (gates == NULL) return -2;
    if (layers > 1 && steps > 0 && batch > 0) {
        buf[0] = malloc((size_t)(batch * steps * hidden) * sizeof(float));
        buf[1] = layers > 2 ? malloc((size_t)(batch * steps * hidden) * sizeof(float)) : NULL;
        if (buf[0] == NULL || (layers > 2 && buf[1] == NULL)) {
            free(gates); free(buf[0]); free(buf[1]);
            return -2;
        }
    }
    const float *p = params;
    const float *layer_in = x;
    for (int64_t l = 0; l < layers; l++) {
        int64_t in = l == 0 ? input_size : hidden;
        const float *w_ih_t = p, *w_hh_t = p + in * g4, *bias = p + in * g4 + hidden * g4;
        p = bias + g4;
        float *layer_out = l + 1 < layers ? buf[l % 2] : NULL;
        if (steps > 0)
            sl_lstm_layer(layer_in, layer_out, h + l * batch * hidden, c + l * batch * hidden,
                          batch, steps, in, hidden, w_ih_t, w_hh_t, bias, gates);
        layer_in = layer_out;
    }
    if (with_head) {
        const float *w_t = p, *b = p + hidden * out_features;
        const float *top = h + (layers - 1) * batch * hidden;
        for (int64_t i = 0; i < batch; i++) {
            float *o = out + i * out_features;
            memcpy(o, b, (size_t)out_features * sizeof(float));
            sl_gemv_t(o, w_t, top + i * hidden, hidden, out_features);
        }
    }
    free(gates); free(buf[0]); free(buf[1]);
    return 0;
}

int sl_lstm_run(const float *params, int64_t input_size, int64_t hidden, int64_t layers,
                int64_t out_features, const float *x, int64_t batch, int64_t steps, float *h,
                float *c, int with_head, float *out)
{
    SL_ENTER
    int rc = sl_lstm_run_impl(params, input_size, hidden, layers, out_features, x, batch, steps,
                              h, c, with_head, out);
    SL_LEAVE
    return rc;
}
