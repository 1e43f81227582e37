/* indical's combine kernel in C: the sorted-window methods (mean, median, min/max, sigma,
 * percentile) of kernels.py, with the same float64 arithmetic in the same order, so masters are
 * bit for bit those of the numba kernels. Loaded through ctypes by native.py, which compiles it
 * with -O3 -ffp-contract=off (no fused multiply-adds: they would change the last bits).
 *
 * A call combines rows [r0, r1) of a stack. Each row is cut into tiles of TILE columns; a tile's
 * stacks (frames x TILE values) stay in L1 while they are precalibrated, scaled, sorted by the
 * comparator network (branch-free min/max across the tile, vectorised) and reduced. The 16-bit
 * entry point reads the stored big-endian integers of each frame itself with pread, a few rows
 * at a time, into the caller's scratch buffer: no memory maps, no page faults on them.
 *
 * params layout (as kernels.py): 0 sigma_low, 1 sigma_high, 2 use_median, 3 maxiters (-1: no
 * limit), 4 clip, 5 percentile_low, 6 percentile_high. */

#ifndef NATIVE_T /* ---------------------------------------------------------------- shared part */

#define _GNU_SOURCE
#include <errno.h>
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#define ABI_VERSION 1
#define TILE 128 /* columns per tile, a multiple of 8 */
#define READ_ROWS 4 /* rows read per pread round: frames x READ_ROWS x width stays in L2 */

enum { MEAN = 0, MEDIAN = 1, MINMAX = 2, SIGMA = 3, PERCENTILE = 6 };
enum { SRC_BE16 = 0, SRC_F32 = 1, SRC_F64 = 2 };

typedef struct {
    int method;
    double sigma_low, sigma_high;
    int use_median;
    int64_t maxiters;
    int64_t clip;
    double pct_low, pct_high;
} params_t;

/* Per-call work space, carved from the caller's buffer (see ind_work_bytes). */
typedef struct {
    double *p1, *p2, *acc; /* (n + 1) x TILE prefix sums, TILE sums */
    double *lo_f, *hi_f;   /* TILE window ends as doubles */
    int32_t *lo, *hi;      /* TILE kept windows */
    void *buf;             /* n x TILE values, float or double */
} work_t;

static size_t align64(size_t x) { return (x + 63) & ~(size_t)63; }

static size_t work_bytes(int n) {
    return align64((size_t)(n + 1) * TILE * sizeof(double)) * 2 + align64(TILE * sizeof(double)) * 3 +
           align64(TILE * sizeof(int32_t)) * 2 + align64((size_t)n * TILE * sizeof(double));
}

static work_t carve(void *space, int n) {
    work_t w;
    char *p = (char *)space;
    w.p1 = (double *)p; p += align64((size_t)(n + 1) * TILE * sizeof(double));
    w.p2 = (double *)p; p += align64((size_t)(n + 1) * TILE * sizeof(double));
    w.acc = (double *)p; p += align64(TILE * sizeof(double));
    w.lo_f = (double *)p; p += align64(TILE * sizeof(double));
    w.hi_f = (double *)p; p += align64(TILE * sizeof(double));
    w.lo = (int32_t *)p; p += align64(TILE * sizeof(int32_t));
    w.hi = (int32_t *)p; p += align64(TILE * sizeof(int32_t));
    w.buf = p;
    return w;
}

static params_t read_params(int method, const double *p) {
    params_t q;
    q.method = method;
    q.sigma_low = p[0];
    q.sigma_high = p[1];
    q.use_median = p[2] != 0.0;
    q.maxiters = (int64_t)p[3];
    q.clip = (int64_t)p[4];
    q.pct_low = p[5];
    q.pct_high = p[6];
    return q;
}

/* One source row of frame k as float64 physical values (before precalibration). */
typedef struct {
    int kind;
    const void *const *frames; /* per frame: first value of row 0 */
    int64_t row_stride;        /* in values */
    const double *offsets;     /* BE16: BZERO - pedestal per frame */
} source_t;

/* Vector types for the loops gcc does not vectorise by itself: as wide as the target's
 * registers (generic vectors wider than the hardware's are lowered to scalar code). */
#if defined(__AVX512F__)
#define VW 8
#elif defined(__AVX__)
#define VW 4
#else
#define VW 2
#endif
typedef double vdf __attribute__((vector_size(VW * 8)));
typedef int64_t vdi __attribute__((vector_size(VW * 8)));
typedef float vsf __attribute__((vector_size(VW * 4)));

#define NATIVE_T float
#define FN(name) name##_f32
#define LOADV(dst, src) do { vsf f_; memcpy(&f_, (src), sizeof f_); \
                             dst = __builtin_convertvector(f_, vdf); } while (0)
#include "native.c" /* this file again, for the per-type part */
#undef FN
#undef NATIVE_T
#undef LOADV
#define NATIVE_T double
#define FN(name) name##_f64
#define LOADV(dst, src) memcpy(&(dst), (src), sizeof(dst))
#include "native.c" /* this file again, for the per-type part */
#undef FN
#undef NATIVE_T
#undef LOADV

int ind_abi_version(void) { return ABI_VERSION; }

int ind_tile(void) { return TILE; }

/* Bytes of work space one thread needs for n frames (the 16-bit file reader needs
 * ind_read_bytes more). */
int64_t ind_work_bytes(int n) { return (int64_t)work_bytes(n); }

int64_t ind_read_bytes(int n, int width) {
    return (int64_t)align64((size_t)n * READ_ROWS * (size_t)width * sizeof(uint16_t));
}

static void process_rows(const source_t *src, int n, int width, int src_row0, int r0, int r1,
                         const double *precal, int use_precal, const double *scales,
                         const params_t *q, const int64_t *network, int npairs, float *out,
                         uint16_t *rejected, void *work) {
    work_t w = carve(work, n);
    for (int r = r0; r < r1; r++) {
        for (int c0 = 0; c0 < width; c0 += TILE) {
            int tw = width - c0 < TILE ? width - c0 : TILE;
            const double *pre = use_precal ? precal + (int64_t)r * width + c0 : NULL;
            float *o = out + (int64_t)r * width + c0;
            uint16_t *rj = rejected + (int64_t)r * width + c0;
            if (src->kind == SRC_F64) {
                fill_f64(src, n, r - src_row0, c0, tw, pre, scales, (double *)w.buf);
                reduce_tile_f64((double *)w.buf, n, tw, q, network, npairs, &w, o, rj);
            } else {
                fill_f32(src, n, r - src_row0, c0, tw, pre, scales, (float *)w.buf);
                reduce_tile_f32((float *)w.buf, n, tw, q, network, npairs, &w, o, rj);
            }
        }
    }
}

/* Combine rows [r0, r1) of a cube of float32 (is_f64 = 0) or float64 physical values,
 * cube[k][r - cube_row0][c], into out and rejected (full images, row r at r * width). */
int ind_combine_cube(const void *cube, int is_f64, int n, int cube_rows, int width, int cube_row0,
                     int r0, int r1, const double *precal, int use_precal, const double *scales,
                     int method, const double *params, const int64_t *network, int npairs,
                     float *out, uint16_t *rejected, void *work) {
    const void *frames[n > 0 ? n : 1];
    size_t item = is_f64 ? sizeof(double) : sizeof(float);
    for (int k = 0; k < n; k++)
        frames[k] = (const char *)cube + (size_t)k * cube_rows * width * item;
    source_t src = {is_f64 ? SRC_F64 : SRC_F32, frames, width, NULL};
    params_t q = read_params(method, params);
    process_rows(&src, n, width, cube_row0, r0, r1, precal, use_precal, scales, &q, network,
                 npairs, out, rejected, work);
    return 0;
}

static int read_fully(int fd, char *dst, size_t len, int64_t pos) {
    while (len > 0) {
        ssize_t got = pread(fd, dst, len, (off_t)pos);
        if (got < 0) {
            if (errno == EINTR) continue;
            return -1;
        }
        if (got == 0) {
            errno = EIO; /* the file is shorter than its header says */
            return -1;
        }
        dst += got;
        len -= (size_t)got;
        pos += got;
    }
    return 0;
}

/* Combine rows [r0, r1) of n frames of big-endian 16-bit integers read from open files:
 * frame k's row r starts at byte data_offsets[k] + 2 * r * width of fds[k]; its physical value
 * is the stored integer plus offsets[k] (BZERO - pedestal). Returns 0, or k + 1 when reading
 * frame k failed (errno tells why). `work` holds ind_work_bytes + ind_read_bytes bytes. */
int ind_combine_be16_files(const int *fds, const int64_t *data_offsets, const double *offsets,
                           int n, int width, int r0, int r1, const double *precal,
                           int use_precal, const double *scales, int method,
                           const double *params, const int64_t *network, int npairs,
                           float *out, uint16_t *rejected, void *work) {
    const void *frames[n > 0 ? n : 1];
    uint16_t *raw = (uint16_t *)((char *)work + work_bytes(n));
    params_t q = read_params(method, params);
    size_t row_bytes = (size_t)width * sizeof(uint16_t);
    for (int b0 = r0; b0 < r1; b0 += READ_ROWS) {
        int b1 = r1 - b0 < READ_ROWS ? r1 : b0 + READ_ROWS;
        for (int k = 0; k < n; k++) {
            uint16_t *dst = raw + (size_t)k * READ_ROWS * width;
            if (read_fully(fds[k], (char *)dst, (size_t)(b1 - b0) * row_bytes,
                           data_offsets[k] + (int64_t)b0 * (int64_t)row_bytes) != 0)
                return k + 1;
            frames[k] = dst;
        }
        source_t src = {SRC_BE16, frames, width, offsets};
        process_rows(&src, n, width, b0, b0, b1, precal, use_precal, scales, &q, network, npairs,
                     out, rejected, work);
    }
    return 0;
}

#else /* ------------------------------------------- per value type (float, double) part */

/* Tile columns [c0, c0 + tw) of source row `row` into buf (frames x TILE): precalibrated and
 * scaled exactly as kernels._fill_be16 / _fill_float do it. */
static void FN(fill)(const source_t *src, int n, int row, int c0, int tw, const double *pre,
                     const double *scales, NATIVE_T *buf) {
    for (int k = 0; k < n; k++) {
        double sk = scales[k];
        NATIVE_T *b = buf + (size_t)k * TILE;
        if (src->kind == SRC_BE16) {
            const uint16_t *s = (const uint16_t *)src->frames[k] + (int64_t)row * src->row_stride + c0;
            double off = src->offsets[k];
            for (int c = 0; c < tw; c++) {
                uint16_t u = (uint16_t)((s[c] << 8) | (s[c] >> 8));
                double x = (double)(int16_t)u + off;
                if (pre) x -= pre[c];
                b[c] = (NATIVE_T)(x * sk);
            }
        } else if (src->kind == SRC_F32) {
            const float *s = (const float *)src->frames[k] + (int64_t)row * src->row_stride + c0;
            for (int c = 0; c < tw; c++) {
                double x = (double)s[c];
                if (pre) x -= pre[c];
                b[c] = (NATIVE_T)(x * sk);
            }
        } else {
            const double *s = (const double *)src->frames[k] + (int64_t)row * src->row_stride + c0;
            for (int c = 0; c < tw; c++) {
                double x = s[c];
                if (pre) x -= pre[c];
                b[c] = (NATIVE_T)(x * sk);
            }
        }
        for (int c = tw; c < TILE; c++) b[c] = 0; /* the last tile of a row: padding */
    }
}

/* numba's min(a, b) is `b < a ? b : a`, max(a, b) `b > a ? b : a`: the same selects here,
 * so even NaNs and signed zeros land where the numba kernel puts them. */
static void FN(sort_tile)(NATIVE_T *buf, const int64_t *network, int npairs) {
    for (int m = 0; m < npairs; m++) {
        NATIVE_T *restrict a = buf + (size_t)network[2 * m] * TILE;
        NATIVE_T *restrict b = buf + (size_t)network[2 * m + 1] * TILE;
        for (int c = 0; c < TILE; c++) { /* the whole tile: a constant count vectorises best */
            NATIVE_T x = a[c], y = b[c];
            a[c] = y < x ? y : x;
            b[c] = y > x ? y : x;
        }
    }
}

static double FN(median)(const NATIVE_T *buf, int c, int lo, int hi) {
    int cnt = hi - lo, mid = lo + cnt / 2;
    if (cnt % 2 == 1) return (double)buf[(size_t)mid * TILE + c];
    return 0.5 * ((double)buf[(size_t)(mid - 1) * TILE + c] + (double)buf[(size_t)mid * TILE + c]);
}

/* Sum of each column's window buf[lo:hi] in frame order (as a loop from lo to hi adds), taken
 * frame by frame across the tile so the loads are contiguous. */
static void FN(window_sums)(const NATIVE_T *buf, int n, const int32_t *lo, const int32_t *hi,
                            double *restrict acc, double *restrict lo_f, double *restrict hi_f) {
    for (int c = 0; c < TILE; c++) {
        lo_f[c] = lo[c];
        hi_f[c] = hi[c];
    }
    /* written with vector types: gcc does not vectorise the masked sum by itself. Outside the
     * window the mask adds +0.0, which changes nothing (a sum that starts at +0.0 is never
     * -0.0), so each column's sum is its window's, added in frame order. */
    for (int c = 0; c < TILE; c += VW) {
        vdf zero = {0.0}, sum = zero, wlo, whi;
        memcpy(&wlo, lo_f + c, sizeof wlo);
        memcpy(&whi, hi_f + c, sizeof whi);
        for (int k = 0; k < n; k++) {
            vdf kv = zero + (double)k, x;
            LOADV(x, buf + (size_t)k * TILE + c);
            vdi inside = (wlo <= kv) & (kv < whi);
            sum += (vdf)((vdi)x & inside);
        }
        memcpy(acc + c, &sum, sizeof sum);
    }
}

/* Sum of frames [k0, k1) of every column, in frame order. */
static void FN(range_sums)(const NATIVE_T *buf, int k0, int k1, double *restrict acc) {
    for (int c = 0; c < TILE; c++) acc[c] = 0.0;
    for (int k = k0; k < k1; k++) {
        const NATIVE_T *restrict b = buf + (size_t)k * TILE;
        for (int c = 0; c < TILE; c++) acc[c] += (double)b[c];
    }
}

/* astropy's two-pass mean and population std over the window, and the clipping bounds. */
static void FN(exact_bounds)(const NATIVE_T *buf, int c, int lo, int hi, const params_t *q,
                             double *lower, double *upper) {
    int cnt = hi - lo;
    double s = 0.0;
    for (int k = lo; k < hi; k++) s += (double)buf[(size_t)k * TILE + c];
    double mean = s / cnt;
    double ss = 0.0;
    for (int k = lo; k < hi; k++) {
        double d = mean - (double)buf[(size_t)k * TILE + c];
        ss += d * d;
    }
    double std = sqrt(ss / cnt);
    double cen = q->use_median ? FN(median)(buf, c, lo, hi) : mean;
    *lower = cen - q->sigma_low * std;
    *upper = cen + q->sigma_high * std;
}

/* kernels._sigma_row for one column: prefix sums give each pass's mean and deviation; where a
 * value lies within rounding distance of a bound, astropy's exact bounds decide. */
static void FN(sigma_column)(const NATIVE_T *buf, int n, int c, const double *p1,
                             const double *p2, const params_t *q, int32_t *lo_out,
                             int32_t *hi_out) {
#define V(k) ((double)buf[(size_t)(k) * TILE + c])
#define NEAR(x, bound) (fabs((x) - (bound)) <= tol)
    int a = 0, b = n;
    int64_t iteration = 0;
    double sl = q->sigma_low, sh = q->sigma_high;
    for (;;) {
        int cnt = b - a;
        double mean = (p1[(size_t)b * TILE + c] - p1[(size_t)a * TILE + c]) / cnt;
        double var = (p2[(size_t)b * TILE + c] - p2[(size_t)a * TILE + c]) / cnt - mean * mean;
        double std = var > 0.0 ? sqrt(var) : 0.0;
        double cen = q->use_median ? FN(median)(buf, c, a, b) : mean;
        double lower = cen - sl * std;
        double upper = cen + sh * std;
        double tol = 1e-9 * (fabs(cen) + fabs(mean) + std * (sl + sh) + 1.0);
        int risky = NEAR(V(a), lower) || NEAR(V(b - 1), upper);
        int new_lo = a;
        while (new_lo < b && V(new_lo) < lower) new_lo++;
        int new_hi = b;
        while (new_hi > new_lo && V(new_hi - 1) > upper) new_hi--;
        if (new_lo < b && NEAR(V(new_lo), lower)) risky = 1;
        if (new_lo > a && NEAR(V(new_lo - 1), lower)) risky = 1;
        if (new_hi > new_lo && NEAR(V(new_hi - 1), upper)) risky = 1;
        if (new_hi < b && NEAR(V(new_hi), upper)) risky = 1;
        if (risky) {
            FN(exact_bounds)(buf, c, a, b, q, &lower, &upper);
            new_lo = a;
            while (new_lo < b && V(new_lo) < lower) new_lo++;
            new_hi = b;
            while (new_hi > new_lo && V(new_hi - 1) > upper) new_hi--;
        }
        if (new_lo == a && new_hi == b) break; /* settled: astropy stops here too */
        a = new_lo;
        b = new_hi;
        iteration++;
        if (b == a || (q->maxiters != -1 && iteration >= q->maxiters)) break;
    }
    *lo_out = a;
    *hi_out = b;
#undef V
#undef NEAR
}

static void FN(reduce_tile)(NATIVE_T *buf, int n, int tw, const params_t *q,
                            const int64_t *network, int npairs, work_t *w, float *out,
                            uint16_t *rejected) {
    double *acc = w->acc;
    int32_t *lo = w->lo, *hi = w->hi;
    for (int c = tw; c < TILE; c++) lo[c] = hi[c] = 0; /* padding */
    if (q->method == MEAN) {
        FN(range_sums)(buf, 0, n, acc);
        for (int c = 0; c < tw; c++) {
            out[c] = (float)(acc[c] / n);
            rejected[c] = 0;
        }
        return;
    }
    FN(sort_tile)(buf, network, npairs);
    if (q->method == MEDIAN) {
        for (int c = 0; c < tw; c++) {
            out[c] = (float)FN(median)(buf, c, 0, n);
            rejected[c] = 0;
        }
        return;
    }
    if (q->method == MINMAX) {
        int k = (int)q->clip;
        FN(range_sums)(buf, k, n - k, acc);
        for (int c = 0; c < tw; c++) {
            out[c] = (float)(acc[c] / (n - 2 * k));
            rejected[c] = (uint16_t)(2 * k);
        }
        return;
    }
    if (q->method == SIGMA) {
        double *p1 = w->p1, *p2 = w->p2;
        for (int c = 0; c < TILE; c++) { p1[c] = 0.0; p2[c] = 0.0; }
        for (int k = 0; k < n; k++) {
            const NATIVE_T *b = buf + (size_t)k * TILE;
            const double *s1 = p1 + (size_t)k * TILE, *s2 = p2 + (size_t)k * TILE;
            double *d1 = p1 + (size_t)(k + 1) * TILE, *d2 = p2 + (size_t)(k + 1) * TILE;
            for (int c = 0; c < TILE; c++) {
                double x = (double)b[c];
                d1[c] = s1[c] + x;
                d2[c] = s2[c] + x * x;
            }
        }
        for (int c = 0; c < tw; c++) FN(sigma_column)(buf, n, c, p1, p2, q, &lo[c], &hi[c]);
        FN(window_sums)(buf, n, lo, hi, acc, w->lo_f, w->hi_f);
        for (int c = 0; c < tw; c++) {
            int cnt = hi[c] - lo[c];
            out[c] = cnt == 0 ? NAN : (float)(acc[c] / cnt);
            rejected[c] = (uint16_t)(n - cnt);
        }
        return;
    }
    /* PERCENTILE: drop values more than a fraction of the median away from it */
    double *med = w->p1;
    for (int c = 0; c < tw; c++) {
        double m = FN(median)(buf, c, 0, n);
        double lower = m - q->pct_low * fabs(m);
        double upper = m + q->pct_high * fabs(m);
        int a = 0;
        while (a < n && (double)buf[(size_t)a * TILE + c] < lower) a++;
        int b = n;
        while (b > a && (double)buf[(size_t)(b - 1) * TILE + c] > upper) b--;
        lo[c] = a;
        hi[c] = b;
        med[c] = m;
    }
    FN(window_sums)(buf, n, lo, hi, acc, w->lo_f, w->hi_f);
    for (int c = 0; c < tw; c++) {
        int cnt = hi[c] - lo[c];
        out[c] = cnt == 0 ? (float)med[c] : (float)(acc[c] / cnt);
        rejected[c] = (uint16_t)(n - cnt);
    }
}

#endif
