/* indical's combine kernel in C: every method of kernels.py (mean, median, min/max, sigma,
 * winsorized, linear fit, percentile), with the same float64 arithmetic in the same order, so
 * masters are bit for bit those of the numba kernels. Loaded through ctypes by native.py, which compiles it
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
#define _FILE_OFFSET_BITS 64 /* 32-bit systems (Raspberry Pi OS armhf): offsets past 2 GB */
#include <errno.h>
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define ABI_VERSION 2
#define TILE 128 /* columns per tile, a multiple of 8 */
#define READ_ROWS 4 /* rows read per pread round: frames x READ_ROWS x width stays in L2 */

enum { MEAN = 0, MEDIAN = 1, MINMAX = 2, SIGMA = 3, WINSORIZED = 4, LINEARFIT = 5, PERCENTILE = 6 };
#define MIN_KEEP 4      /* winsorized and linear fit never keep fewer (kernels._MIN_KEEP) */
#define N_STATE 12      /* TILE-long double arrays of per-column state (winsorized, linear fit) */
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
    double *t1, *t2;            /* TILE: sum and sum of squares of each sorted stack */
    double *lower, *upper, *tol; /* TILE: the first pass's bounds and rounding margin */
    double *p1, *p2;            /* (n + 1) x TILE: prefix sums of the columns that need more passes */
    int32_t *settled;           /* TILE: sigma's first pass kept the whole stack */
    int32_t *cols, *wlo, *whi;  /* TILE: columns that need more passes, their windows */
    double *st;                 /* N_STATE x TILE: per-column state of winsorized, linear fit */
    int32_t *ist;               /* 4 x TILE: the same, integers */
    int16_t *ibuf;              /* n x TILE stored integers */
    double *dv;                 /* n x TILE: the sorted values as float64 (winsorized, linear fit) */
    void *buf;                  /* n x TILE values, float or double */
} work_t;

static size_t align64(size_t x) { return (x + 63) & ~(size_t)63; }

static size_t work_bytes(int n) {
    return align64(TILE * sizeof(double)) * 5 + align64((size_t)(n + 1) * TILE * sizeof(double)) * 2 +
           align64(TILE * sizeof(int32_t)) * 4 + align64(N_STATE * TILE * sizeof(double)) +
           align64(4 * TILE * sizeof(int32_t)) + align64((size_t)n * TILE * sizeof(int16_t)) +
           align64((size_t)n * TILE * sizeof(double)) * 2;
}

static work_t carve(void *space, int n) {
    work_t w;
    char *p = (char *)space;
    w.t1 = (double *)p; p += align64(TILE * sizeof(double));
    w.t2 = (double *)p; p += align64(TILE * sizeof(double));
    w.lower = (double *)p; p += align64(TILE * sizeof(double));
    w.upper = (double *)p; p += align64(TILE * sizeof(double));
    w.tol = (double *)p; p += align64(TILE * sizeof(double));
    w.p1 = (double *)p; p += align64((size_t)(n + 1) * TILE * sizeof(double));
    w.p2 = (double *)p; p += align64((size_t)(n + 1) * TILE * sizeof(double));
    w.settled = (int32_t *)p; p += align64(TILE * sizeof(int32_t));
    w.cols = (int32_t *)p; p += align64(TILE * sizeof(int32_t));
    w.wlo = (int32_t *)p; p += align64(TILE * sizeof(int32_t));
    w.whi = (int32_t *)p; p += align64(TILE * sizeof(int32_t));
    w.st = (double *)p; p += align64(N_STATE * TILE * sizeof(double));
    w.ist = (int32_t *)p; p += align64(4 * TILE * sizeof(int32_t));
    w.ibuf = (int16_t *)p; p += align64((size_t)n * TILE * sizeof(int16_t));
    w.dv = (double *)p; p += align64((size_t)n * TILE * sizeof(double));
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

/* x clamped to [lo, hi] (lo <= hi) as kernels._winsorized_clip clamps: below lo gives lo, above hi
 * gives hi. */
static inline double clamp_to(double x, double lo, double hi) {
    x = x < lo ? lo : x;
    return x > hi ? hi : x;
}

/* Where the frames' values come from: per frame, the first value of its row 0 (stored 16-bit
 * integers, or float32/float64 physical values), rows row_stride values apart. */
typedef struct {
    int kind;
    const void *const *frames; /* per frame: first value of row 0 */
    int64_t row_stride;        /* in values */
    const double *offsets;     /* BE16: BZERO - pedestal per frame */
} source_t;

/* The mean of each column's whole sorted stack (added in stack order): winsorized and linear
 * fit when nothing may be rejected (MIN_KEEP or fewer frames, or no iterations allowed). */
static void plain_mean(const double *v, int n, int tw, double *restrict t1, float *out,
                       uint16_t *rejected) {
    for (int c = 0; c < TILE; c++) t1[c] = 0.0;
    for (int k = 0; k < n; k++) {
        const double *restrict row = v + (size_t)k * TILE;
        for (int c = 0; c < TILE; c++) t1[c] += row[c];
    }
    for (int c = 0; c < tw; c++) {
        out[c] = (float)(t1[c] / n);
        rejected[c] = 0;
    }
}

/* Column c's median and sum over window [lo, hi) of a sorted tile of doubles. */
static double dmedian(const double *v, int c, int lo, int hi) {
    int cnt = hi - lo, mid = lo + cnt / 2;
    if (cnt % 2 == 1) return v[(size_t)mid * TILE + c];
    return 0.5 * (v[(size_t)(mid - 1) * TILE + c] + v[(size_t)mid * TILE + c]);
}

static double dwindow_sum(const double *v, int c, int lo, int hi) {
    double s = 0.0;
    for (int k = lo; k < hi; k++) s += v[(size_t)k * TILE + c];
    return s;
}

/* Marks (flag[c] != 0) the tile's columns holding a NaN or an infinity and gives them their
 * answer in winsorized and linear fit: such a value makes the stack's sigma NaN (inf - inf,
 * 0 * inf or a NaN on the way), every comparison with it false, so the kernels reject nothing
 * (a rejection leaving fewer than MIN_KEEP values is not made): the mean of the whole stack. */
static void nonfinite_columns(const double *v, int n, int tw, int32_t *restrict flag,
                              double *t1, float *out, uint16_t *rejected) {
    for (int c = 0; c < TILE; c++) flag[c] = 0;
    for (int k = 0; k < n; k++) {
        const double *restrict row = v + (size_t)k * TILE;
        for (int c = 0; c < TILE; c++) flag[c] |= !(row[c] - row[c] == 0.0);
    }
    int any = 0;
    for (int c = 0; c < tw; c++) any |= flag[c];
    if (!any) return;
    plain_mean(v, n, tw, t1, out, rejected); /* the others' answers are overwritten later */
}

/* For lanes [0, m): the mean and the sum of squared deviations from it of the values of
 * window [flo, fhi) clamped to [L, H], each added in window order (a lane's values outside
 * its window add +0.0, which changes no sum that starts at +0.0). */
static void clamped_moments(const double *buf, int k0, int k1, int m,
                                const double *restrict flo, const double *restrict fhi,
                                const double *restrict L, const double *restrict H,
                                double *restrict mean, double *restrict ss) {
    for (int j = 0; j < m; j++) mean[j] = 0.0;
    for (int k = k0; k < k1; k++) {
        const double *restrict row = buf + (size_t)k * TILE;
        double fk = k;
#pragma GCC ivdep
        for (int j = 0; j < m; j++) {
            double x = clamp_to((double)row[j], L[j], H[j]);
            mean[j] += ((fk >= flo[j]) & (fk < fhi[j])) ? x : 0.0;
        }
    }
    for (int j = 0; j < m; j++) mean[j] /= fhi[j] - flo[j];
    for (int j = 0; j < m; j++) ss[j] = 0.0;
    for (int k = k0; k < k1; k++) {
        const double *restrict row = buf + (size_t)k * TILE;
        double fk = k;
#pragma GCC ivdep
        for (int j = 0; j < m; j++) {
            double d = mean[j] - clamp_to((double)row[j], L[j], H[j]);
            ss[j] += ((fk >= flo[j]) & (fk < fhi[j])) ? d * d : 0.0;
        }
    }
}

#define WINSOR_STEPS 50 /* kernels._winsorized_clip's limit on winsorizing steps */

/* kernels._winsorized_clip on a sorted tile, with the same float64 operations in the same
 * order. A pixel's kept values are always a window [lo, hi) of its sorted stack (the
 * rejection tests are monotone in the value), and its winsorized copy is that window clamped
 * to [L, H] (clamping sorted values keeps them sorted, and successive clamps compose to one
 * as long as each new range holds the median, which it does): so every median is read at
 * the middle positions, O(1), where numba selects on a copy, and a winsorizing step is two
 * passes over the window. The pixels still iterating are packed into the first m lanes of
 * the tile and stepped together (vectorised across lanes); finished ones drop out. */
static void winsorized_tile(double *buf, int n, int tw, const params_t *q, work_t *w,
                                float *out, uint16_t *rejected) {
    if (n <= MIN_KEEP || !(q->maxiters == -1 || q->maxiters > 0)) {
        plain_mean(buf, n, tw, w->t1, out, rejected);
        return;
    }
    double *flo = w->st, *fhi = w->st + TILE, *L = w->st + 2 * TILE, *H = w->st + 3 * TILE;
    double *med = w->st + 4 * TILE, *sig = w->st + 5 * TILE, *mean = w->st + 6 * TILE;
    double *ss = w->st + 7 * TILE;
    int32_t *col = w->ist, *iter = w->ist + TILE, *steps = w->ist + 2 * TILE;
    int32_t *phase = w->ist + 3 * TILE; /* 0: the step gives sigma; 1: a winsorizing step */
    const double sl = q->sigma_low, sh = q->sigma_high;
    nonfinite_columns(buf, n, tw, phase, w->t1, out, rejected);
    int m = 0;
    for (int c = 0; c < tw; c++) {
        if (phase[c]) continue;
        if (m != c)
            for (int k = 0; k < n; k++) buf[(size_t)k * TILE + m] = buf[(size_t)k * TILE + c];
        col[m++] = c;
    }
#define V(k) ((double)buf[(size_t)(k) * TILE + j])
    for (int j = 0; j < m; j++) {
        flo[j] = 0.0;
        fhi[j] = n;
        L[j] = -INFINITY;
        H[j] = INFINITY;
        iter[j] = 0;
        phase[j] = 0;
        med[j] = dmedian(buf, j, 0, n);
    }
    while (m > 0) {
        int k0 = n, k1 = 0;
        for (int j = 0; j < m; j++) {
            if (col[j] < 0) continue;
            k0 = (int)flo[j] < k0 ? (int)flo[j] : k0;
            k1 = (int)fhi[j] > k1 ? (int)fhi[j] : k1;
        }
        clamped_moments(buf, k0, k1, m, flo, fhi, L, H, mean, ss);
        int dead = 0;
        for (int j = 0; j < m; j++) {
            if (col[j] < 0) {
                dead++;
                continue;
            }
            int lo = (int)flo[j], hi = (int)fhi[j], cnt = hi - lo;
            double ns = 1.134 * sqrt(ss[j] / cnt);
            int winsorize = 1;
            if (phase[j] == 0) {
                sig[j] = ns;
                steps[j] = 0;
                phase[j] = 1;
            } else {
                int done = fabs(ns - sig[j]) <= 5e-4 * sig[j];
                sig[j] = ns;
                steps[j]++;
                winsorize = !done && steps[j] < WINSOR_STEPS;
            }
            if (winsorize) { /* the next step's range: 1.5 sigma around the copy's median */
                double l = L[j], h = H[j];
                int mid = lo + cnt / 2;
                double wmed = cnt % 2 == 1 ? clamp_to(V(mid), l, h)
                                           : 0.5 * (clamp_to(V(mid - 1), l, h) + clamp_to(V(mid), l, h));
                double lb = wmed - 1.5 * sig[j], hb = wmed + 1.5 * sig[j];
                if (lb > l) L[j] = lb;
                if (hb < h) H[j] = hb;
                continue;
            }
            /* reject beyond sigma_low / sigma_high winsorized sigmas from the median */
            double md = med[j], s = sig[j];
            int a = lo;
            while (a < hi && !(md - V(a) <= sl * s)) a++;
            int b = hi;
            while (b > a && !(V(b - 1) - md <= sh * s)) b--;
            iter[j]++;
            if (b - a != cnt && b - a >= MIN_KEEP) {
                lo = a;
                hi = b;
                flo[j] = a;
                fhi[j] = b;
                if (b - a > MIN_KEEP && (q->maxiters == -1 || iter[j] < q->maxiters)) {
                    med[j] = dmedian(buf, j, lo, hi);
                    L[j] = -INFINITY;
                    H[j] = INFINITY;
                    phase[j] = 0;
                    continue;
                }
            }
            out[col[j]] = (float)(dwindow_sum(buf, j, lo, hi) / (hi - lo));
            rejected[col[j]] = (uint16_t)(n - (hi - lo));
            col[j] = -1;
            flo[j] = fhi[j] = 0.0;
            dead++;
        }
        if (dead * 4 < m) continue;
        /* pack the live lanes (their windows' values and state) to the front */
        int live = 0;
        for (int j = 0; j < m; j++) {
            if (col[j] < 0) continue;
            if (live != j) {
                for (int k = (int)flo[j]; k < (int)fhi[j]; k++)
                    buf[(size_t)k * TILE + live] = buf[(size_t)k * TILE + j];
                flo[live] = flo[j];
                fhi[live] = fhi[j];
                L[live] = L[j];
                H[live] = H[j];
                med[live] = med[j];
                sig[live] = sig[j];
                col[live] = col[j];
                iter[live] = iter[j];
                steps[live] = steps[j];
                phase[live] = phase[j];
            }
            live++;
        }
        m = live;
    }
#undef V
}

/* Linear fit, first pass: each column's sums of its kept values y and of rank * y, added in
 * stack order (a value's rank is its index in numba's compacted stack). */
static void fit_sums(const double *restrict buf, const double *restrict keep, int n,
                         double *restrict sy, double *restrict sxy, double *restrict rank) {
    for (int c = 0; c < TILE; c++) sy[c] = sxy[c] = rank[c] = 0.0;
    for (int k = 0; k < n; k++) {
        const double *restrict row = buf + (size_t)k * TILE;
        const double *restrict f = keep + (size_t)k * TILE;
#pragma GCC ivdep
        for (int c = 0; c < TILE; c++) {
            double x = (double)row[c], xi = rank[c] * x;
            sy[c] += f[c] != 0.0 ? x : 0.0;
            sxy[c] += f[c] != 0.0 ? xi : 0.0;
            rank[c] += f[c];
        }
    }
}

/* Linear fit, second pass: the mean absolute deviation of the kept values from the line. */
static void fit_deviation(const double *restrict buf, const double *restrict keep, int n,
                              const double *restrict a, const double *restrict b,
                              const double *restrict cnt, double *restrict sg,
                              double *restrict rank) {
    for (int c = 0; c < TILE; c++) sg[c] = rank[c] = 0.0;
    for (int k = 0; k < n; k++) {
        const double *restrict row = buf + (size_t)k * TILE;
        const double *restrict f = keep + (size_t)k * TILE;
#pragma GCC ivdep
        for (int c = 0; c < TILE; c++) {
            double d = fabs((double)row[c] - (a[c] + b[c] * rank[c]));
            sg[c] += f[c] != 0.0 ? d : 0.0;
            rank[c] += f[c];
        }
    }
    for (int c = 0; c < TILE; c++) sg[c] /= cnt[c];
}

/* Linear fit, third pass: the values the line keeps (fresh flags) and how many. */
static void fit_keep(const double *restrict buf, const double *restrict keep, int n,
                         const double *restrict a, const double *restrict b,
                         const double *restrict sg, double sl, double sh,
                         double *restrict fresh, double *restrict fresh_cnt,
                         double *restrict rank) {
    for (int c = 0; c < TILE; c++) fresh_cnt[c] = rank[c] = 0.0;
    for (int k = 0; k < n; k++) {
        const double *restrict row = buf + (size_t)k * TILE;
        const double *restrict f = keep + (size_t)k * TILE;
        double *restrict g = fresh + (size_t)k * TILE;
#pragma GCC ivdep
        for (int c = 0; c < TILE; c++) {
            double r = (double)row[c] - (a[c] + b[c] * rank[c]);
            double kept = (f[c] != 0.0) & (-r <= sl * sg[c]) & (r <= sh * sg[c]) ? 1.0 : 0.0;
            g[c] = kept;
            fresh_cnt[c] += kept;
            rank[c] += f[c];
        }
    }
}

/* Linear fit, last pass of a round: the fresh flags replace the kept ones where commit[c]
 * is 1.0; sy gets the sums of the values then kept (the answer of columns that finish). */
static void fit_commit(const double *restrict buf, double *restrict keep,
                           const double *restrict fresh, int n, const double *restrict commit,
                           double *restrict sy) {
    for (int c = 0; c < TILE; c++) sy[c] = 0.0;
    for (int k = 0; k < n; k++) {
        const double *restrict row = buf + (size_t)k * TILE;
        double *restrict f = keep + (size_t)k * TILE;
        const double *restrict g = fresh + (size_t)k * TILE;
#pragma GCC ivdep
        for (int c = 0; c < TILE; c++) {
            double x = (double)row[c];
            double fk = f[c] + commit[c] * (g[c] - f[c]); /* exact: all are 0.0 or 1.0 */
            f[c] = fk;
            sy[c] += fk != 0.0 ? x : 0.0;
        }
    }
}

/* kernels._linear_fit_clip on a sorted tile, with the same float64 operations in the same
 * order. Instead of compacting each stack, its kept values are flagged (keep[k][c] = 1.0):
 * a value's index in numba's compacted stack is its rank among the kept ones, so every sum
 * adds the same values with the same weights in the same order. All columns of the tile are
 * fitted together, vectorised across the tile, until the last one is done. */
static void linearfit_tile(const double *buf, int n, int tw, const params_t *q,
                               work_t *w, float *out, uint16_t *rejected) {
    if (n <= MIN_KEEP || !(q->maxiters == -1 || q->maxiters > 0)) {
        plain_mean(buf, n, tw, w->t1, out, rejected);
        return;
    }
    double *keep = w->p1, *fresh = w->p2; /* n x TILE flags, 1.0 or 0.0 */
    double *cnt = w->st, *sy = w->st + TILE, *sxy = w->st + 2 * TILE;
    double *a = w->st + 3 * TILE, *b = w->st + 4 * TILE, *sg = w->st + 5 * TILE;
    double *fresh_cnt = w->st + 6 * TILE, *rank = w->st + 7 * TILE, *live = w->st + 8 * TILE;
    double *commit = w->st + 9 * TILE;
    int32_t *iter = w->ist, *nan = w->ist + TILE;
    nonfinite_columns(buf, n, tw, nan, w->t1, out, rejected);
    int n_live = 0;
    for (int c = 0; c < TILE; c++) {
        live[c] = c < tw && !nan[c] ? 1.0 : 0.0;
        n_live += c < tw && !nan[c];
        cnt[c] = n;
        iter[c] = 0;
    }
    for (int k = 0; k < n; k++)
        for (int c = 0; c < TILE; c++) keep[(size_t)k * TILE + c] = live[c];
    while (n_live > 0) {
        /* least squares y = a + b * i over the kept values, i their rank */
        fit_sums(buf, keep, n, sy, sxy, rank);
        for (int c = 0; c < TILE; c++) {
            double count = cnt[c];
            double sx = count * (count - 1.0) * 0.5;                      /* exact, as numba's */
            double sxx = (count - 1.0) * count * (2.0 * count - 1.0) / 6.0; /* integer sums */
            double den = count * sxx - sx * sx;
            b[c] = den != 0.0 ? (count * sxy[c] - sx * sy[c]) / den : 0.0;
            a[c] = (sy[c] - b[c] * sx) / count;
        }
        fit_deviation(buf, keep, n, a, b, cnt, sg, rank);
        fit_keep(buf, keep, n, a, b, sg, q->sigma_low, q->sigma_high, fresh, fresh_cnt, rank);
        /* the rejection is made where it leaves MIN_KEEP values or more (commit[c] = 1.0) */
        int finishing = 0;
        for (int c = 0; c < TILE; c++) {
            commit[c] = 0.0;
            if (live[c] == 0.0) continue;
            iter[c]++;
            int count = (int)cnt[c], fresh_n = (int)fresh_cnt[c];
            if (fresh_n != count && fresh_n >= MIN_KEEP) {
                commit[c] = 1.0;
                cnt[c] = fresh_n;
                if (fresh_n > MIN_KEEP && (q->maxiters == -1 || iter[c] < q->maxiters)) continue;
            }
            live[c] = -1.0; /* finishes this round */
            finishing++;
        }
        fit_commit(buf, keep, fresh, n, commit, sy);
        if (finishing == 0) continue;
        for (int c = 0; c < tw; c++) {
            if (live[c] != -1.0) continue;
            out[c] = (float)(sy[c] / cnt[c]);
            rejected[c] = (uint16_t)(n - (int)cnt[c]);
            live[c] = 0.0;
            n_live--;
        }
    }
}

#define NATIVE_T float
#define FN(name) name##_f32
#include "native.c" /* this file again, for the per-type part */
#undef FN
#undef NATIVE_T
#define NATIVE_T double
#define FN(name) name##_f64
#include "native.c" /* this file again, for the per-type part */
#undef FN
#undef NATIVE_T

int ind_abi_version(void) { return ABI_VERSION; }

/* Bytes of work space one thread needs for n frames (the 16-bit file reader needs
 * ind_read_bytes more). */
int64_t ind_work_bytes(int n) { return (int64_t)work_bytes(n); }

int64_t ind_read_bytes(int n, int width) {
    return (int64_t)align64((size_t)n * READ_ROWS * (size_t)width * sizeof(uint16_t));
}

/* True when every frame has the same offset and the same positive scale: the value a kernel
 * sees is then one non-decreasing function of the stored integer (per pixel: the same
 * precalibration value for every frame), so sorting the integers and converting afterwards
 * gives exactly the sorted values, and 16-bit comparisons do twice the work per instruction.
 * (Equal values convert to the same bits: no -0.0 arises from an integer plus offsets.) */
static int uniform_16bit(const source_t *src, int n, const double *scales) {
    if (src->kind != SRC_BE16) return 0;
    for (int k = 1; k < n; k++)
        if (src->offsets[k] != src->offsets[0] || scales[k] != scales[0]) return 0;
    return n > 0 && scales[0] > 0.0 && isfinite(scales[0]) && isfinite(src->offsets[0]);
}

/* Tile columns [c0, c0 + tw) of source row `row` as native int16, sorted per column. */
static void sorted_int16_tile(const source_t *src, int n, int row, int c0, int tw,
                              const int64_t *network, int npairs, int16_t *ibuf) {
    for (int k = 0; k < n; k++) {
        const uint16_t *s = (const uint16_t *)src->frames[k] + (int64_t)row * src->row_stride + c0;
        int16_t *b = ibuf + (size_t)k * TILE;
        for (int c = 0; c < tw; c++) b[c] = (int16_t)(uint16_t)((s[c] << 8) | (s[c] >> 8));
        for (int c = tw; c < TILE; c++) b[c] = 0;
    }
    for (int m = 0; m < npairs; m++) {
        int16_t *restrict a = ibuf + (size_t)network[2 * m] * TILE;
        int16_t *restrict b = ibuf + (size_t)network[2 * m + 1] * TILE;
        for (int c = 0; c < TILE; c++) {
            int16_t x = a[c], y = b[c];
            a[c] = y < x ? y : x;
            b[c] = y > x ? y : x;
        }
    }
}

static void process_rows(const source_t *src, int n, int width, int src_row0, int r0, int r1,
                         const double *precal, int use_precal, const double *scales,
                         const params_t *q, const int64_t *network, int npairs, float *out,
                         uint16_t *rejected, void *work) {
    work_t w = carve(work, n);
    int sort_ints = q->method != MEAN && uniform_16bit(src, n, scales);
    for (int r = r0; r < r1; r++) {
        for (int c0 = 0; c0 < width; c0 += TILE) {
            int tw = width - c0 < TILE ? width - c0 : TILE;
            const double *pre = use_precal ? precal + (int64_t)r * width + c0 : NULL;
            float *o = out + (int64_t)r * width + c0;
            uint16_t *rj = rejected + (int64_t)r * width + c0;
            if (src->kind == SRC_F64) {
                fill_f64(src, n, r - src_row0, c0, tw, pre, scales, (double *)w.buf);
                reduce_tile_f64((double *)w.buf, n, tw, q, network, npairs, 0, &w, o, rj);
            } else if (sort_ints) {
                sorted_int16_tile(src, n, r - src_row0, c0, tw, network, npairs, w.ibuf);
                convert_int16_f32(w.ibuf, n, src->offsets[0], scales[0], pre, (float *)w.buf);
                reduce_tile_f32((float *)w.buf, n, tw, q, network, npairs, 1, &w, o, rj);
            } else {
                fill_f32(src, n, r - src_row0, c0, tw, pre, scales, (float *)w.buf);
                reduce_tile_f32((float *)w.buf, n, tw, q, network, npairs, 0, &w, o, rj);
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

/* The level of a 16-bit frame as engine.measure_level defines it: the median of the stored
 * integers on rows[0..nrows), every step-th column from 0, plus offset (BZERO - pedestal; the
 * mean of the two middle values for an even count). Reads the rows with pread. NaN when
 * reading fails (errno says why) or memory is short. */
double ind_level_be16(int fd, int64_t data_offset, int width, const int32_t *rows, int nrows,
                      int step, double offset) {
    int64_t per_row = (width + step - 1) / step, count = per_row * nrows;
    uint16_t *row = malloc((size_t)width * sizeof(uint16_t));
    int32_t *sample = malloc((size_t)(count > 0 ? count : 1) * sizeof(int32_t));
    double level = NAN;
    if (!row || !sample || count == 0) {
        if (count != 0) errno = ENOMEM;
        goto done;
    }
    int64_t m = 0;
    for (int i = 0; i < nrows; i++) { /* count > 0: every row gives a sample */
        if (read_fully(fd, (char *)row, (size_t)width * sizeof(uint16_t),
                       data_offset + (int64_t)rows[i] * width * (int64_t)sizeof(uint16_t)) != 0)
            goto done;
        for (int c = 0; c < width; c += step)
            sample[m++] = (int16_t)(uint16_t)((row[c] << 8) | (row[c] >> 8));
    }
    /* the two middle values (equal for an odd count), counted in a histogram */
    int32_t lo_v = INT32_MAX, hi_v = INT32_MIN;
    for (int64_t i = 0; i < count; i++) {
        lo_v = sample[i] < lo_v ? sample[i] : lo_v;
        hi_v = sample[i] > hi_v ? sample[i] : hi_v;
    }
    int64_t k = count / 2, below = 0;
    int32_t lower = lo_v, upper = lo_v;
    uint32_t *hist = calloc((size_t)(hi_v - lo_v) + 1, sizeof(uint32_t));
    if (!hist) {
        errno = ENOMEM;
        goto done;
    }
    for (int64_t i = 0; i < count; i++) hist[sample[i] - lo_v]++;
    for (int32_t v = lo_v; v <= hi_v; v++) {
        int64_t h = hist[v - lo_v];
        if (h == 0) continue;
        if (below <= k - 1 && k - 1 < below + h) lower = v; /* value of sorted[k - 1] */
        if (below <= k && k < below + h) {                   /* value of sorted[k] */
            upper = v;
            break;
        }
        below += h;
    }
    free(hist);
    if (count % 2 == 1) {
        level = (double)upper + offset;
    } else {
        level = (((double)lower + offset) + ((double)upper + offset)) / 2.0;
    }
done:
    free(row);
    free(sample);
    return level;
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

/* Sorted native int16 stacks to values, as fill does it for each (same offset and scale). */
__attribute__((unused)) /* float64 tiles never come from 16-bit frames */
static void FN(convert_int16)(const int16_t *ibuf, int n, double off, double sk,
                              const double *pre, NATIVE_T *buf) {
    for (int k = 0; k < n; k++) {
        const int16_t *restrict s = ibuf + (size_t)k * TILE;
        NATIVE_T *restrict b = buf + (size_t)k * TILE;
        if (pre) {
            for (int c = 0; c < TILE; c++) b[c] = (NATIVE_T)(((double)s[c] + off - pre[c]) * sk);
        } else {
            for (int c = 0; c < TILE; c++) b[c] = (NATIVE_T)(((double)s[c] + off) * sk);
        }
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

/* Each column's median of the whole sorted stack, for the tile at once. */
static void FN(medians)(const NATIVE_T *buf, int n, double *restrict med) {
    const NATIVE_T *b = buf + (size_t)(n / 2) * TILE;
    if (n % 2 == 1) {
        for (int c = 0; c < TILE; c++) med[c] = (double)b[c];
    } else {
        const NATIVE_T *a = b - TILE;
        for (int c = 0; c < TILE; c++) med[c] = 0.5 * ((double)a[c] + (double)b[c]);
    }
}

/* Sum of frames [k0, k1) of every column in frame order (with t2: and of the squares). */
static void FN(range_sums)(const NATIVE_T *buf, int k0, int k1, double *restrict t1,
                           double *restrict t2) {
    for (int c = 0; c < TILE; c++) t1[c] = 0.0;
    if (t2) {
        for (int c = 0; c < TILE; c++) t2[c] = 0.0;
        for (int k = k0; k < k1; k++) {
            const NATIVE_T *restrict b = buf + (size_t)k * TILE;
            for (int c = 0; c < TILE; c++) {
                double x = (double)b[c];
                t1[c] += x;
                t2[c] += x * x;
            }
        }
        return;
    }
    for (int k = k0; k < k1; k++) {
        const NATIVE_T *restrict b = buf + (size_t)k * TILE;
        for (int c = 0; c < TILE; c++) t1[c] += (double)b[c];
    }
}

/* Column c's sum over its window, added from lo up (as kernels._window_mean and the numba
 * sigma kernel's frame-by-frame sums do). */
static double FN(window_sum)(const NATIVE_T *buf, int c, int lo, int hi) {
    double s = 0.0;
    for (int k = lo; k < hi; k++) s += (double)buf[(size_t)k * TILE + c];
    return s;
}

/* astropy's two-pass mean and population std over the window, and the clipping bounds. */
static void FN(exact_bounds)(const NATIVE_T *buf, int c, int lo, int hi, const params_t *q,
                             double *lower, double *upper) {
    int cnt = hi - lo;
    double mean = FN(window_sum)(buf, c, lo, hi) / cnt;
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

/* One pass of kernels._sigma_row for column c with window [*a, *b) and the bounds this pass
 * computed: the new window, where a value lies within `tol` of a bound decided by astropy's
 * exact bounds. Returns whether the window changed. */
static int FN(sigma_pass)(const NATIVE_T *buf, int c, const params_t *q, double lower,
                          double upper, double tol, int *a_io, int *b_io) {
#define V(k) ((double)buf[(size_t)(k) * TILE + c])
#define NEAR(x, bound) (fabs((x) - (bound)) <= tol)
    int a = *a_io, b = *b_io;
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
    *a_io = new_lo;
    *b_io = new_hi;
    return new_lo != a || new_hi != b;
#undef V
#undef NEAR
}

/* The bounds of a pass over window [a, b) from prefix sums, as kernels._sigma_row computes
 * them (one-pass variance; tol is how far its rounding could move a bound). */
static void FN(pass_bounds)(double s1, double s2, int cnt, double median, const params_t *q,
                            double *lower, double *upper, double *tol) {
    double mean = s1 / cnt;
    double var = s2 / cnt - mean * mean;
    double std = var > 0.0 ? sqrt(var) : 0.0;
    double cen = q->use_median ? median : mean;
    *lower = cen - q->sigma_low * std;
    *upper = cen + q->sigma_high * std;
    *tol = 1e-9 * (fabs(cen) + fabs(mean) + std * (q->sigma_low + q->sigma_high) + 1.0);
}

/* Sigma clipping of a sorted tile. The first pass (the whole stack) is computed for all
 * columns at once from the stacks' sums; most pixels keep every value and stop there. The
 * columns whose window moved get their prefix sums (computed together: independent chains
 * overlap) and continue one by one, pass by pass, exactly as kernels._sigma_row does (which
 * stops each pixel where astropy would). */
static void FN(sigma_tile)(const NATIVE_T *buf, int n, int tw, const params_t *q, work_t *w,
                           float *out, uint16_t *rejected) {
    double *restrict t1 = w->t1, *restrict t2 = w->t2, *restrict lower = w->lower;
    double *restrict upper = w->upper, *restrict tol = w->tol;
    const double sl = q->sigma_low, sh = q->sigma_high;
    const int use_median = q->use_median;
    const int64_t maxiters = q->maxiters;
    FN(range_sums)(buf, 0, n, t1, t2);
    FN(medians)(buf, n, lower); /* lower holds the medians until the bounds replace them */
    for (int c = 0; c < TILE; c++) {
        double mean = t1[c] / n;
        double var = t2[c] / n - mean * mean;
        double std = var > 0.0 ? sqrt(var) : 0.0;
        double cen = use_median ? lower[c] : mean;
        lower[c] = cen - sl * std;
        upper[c] = cen + sh * std;
        tol[c] = 1e-9 * (fabs(cen) + fabs(mean) + std * (sl + sh) + 1.0);
    }
    /* pass 1 for the usual pixel, all columns at once: nothing below or above the bounds and
     * no end value within rounding distance of one (then sigma_pass keeps the window too) */
    const NATIVE_T *first = buf, *last = buf + (size_t)(n - 1) * TILE;
    int32_t *settled = w->settled;
    for (int c = 0; c < TILE; c++) {
        double v0 = (double)first[c], v1 = (double)last[c];
        settled[c] = !(v0 < lower[c]) & !(v1 > upper[c]) & !(fabs(v0 - lower[c]) <= tol[c]) &
                     !(fabs(v1 - upper[c]) <= tol[c]);
    }
    for (int c = 0; c < tw; c++) {
        out[c] = (float)(t1[c] / n);
        rejected[c] = 0;
    }
    /* the other columns: pass 1 one by one; the windows that moved are finished below */
    int32_t *cols = w->cols, *wlo = w->wlo, *whi = w->whi; /* deep column j and its window */
    int deep = 0;
    for (int c = 0; c < tw; c++) {
        int a = 0, b = n;
        if (settled[c] || !FN(sigma_pass)(buf, c, q, lower[c], upper[c], tol[c], &a, &b))
            continue;
        cols[deep] = c;
        wlo[deep] = a;
        whi[deep] = b;
        deep++;
    }
    if (deep == 0) return;
    /* prefix sums of the deep columns, side by side: P[k * deep + j] */
    double *restrict p1 = w->p1, *restrict p2 = w->p2;
    for (int j = 0; j < deep; j++) p1[j] = p2[j] = 0.0;
    for (int k = 0; k < n; k++) {
        const NATIVE_T *row = buf + (size_t)k * TILE;
        const double *s1 = p1 + (size_t)k * deep, *s2 = p2 + (size_t)k * deep;
        double *d1 = p1 + (size_t)(k + 1) * deep, *d2 = p2 + (size_t)(k + 1) * deep;
        for (int j = 0; j < deep; j++) {
            double x = (double)row[cols[j]];
            d1[j] = s1[j] + x;
            d2[j] = s2[j] + x * x;
        }
    }
    for (int j = 0; j < deep; j++) {
        int c = cols[j], a = wlo[j], b = whi[j];
        int64_t iteration = 1;
        if (b > a && (maxiters == -1 || iteration < maxiters)) {
            for (;;) {
                double lo_b, hi_b, t;
                FN(pass_bounds)(p1[(size_t)b * deep + j] - p1[(size_t)a * deep + j],
                                p2[(size_t)b * deep + j] - p2[(size_t)a * deep + j], b - a,
                                use_median ? FN(median)(buf, c, a, b) : 0.0, q, &lo_b, &hi_b, &t);
                if (!FN(sigma_pass)(buf, c, q, lo_b, hi_b, t, &a, &b)) break;
                iteration++;
                if (b == a || (maxiters != -1 && iteration >= maxiters)) break;
            }
        }
        wlo[j] = a;
        whi[j] = b;
    }
    /* the kept windows' sums, side by side again (t1 is free now) */
    for (int j = 0; j < deep; j++) t1[j] = 0.0;
    for (int k = 0; k < n; k++) {
        const NATIVE_T *row = buf + (size_t)k * TILE;
        for (int j = 0; j < deep; j++) {
            double x = (double)row[cols[j]];
            t1[j] += (wlo[j] <= k && k < whi[j]) ? x : 0.0; /* +0.0 outside: a sum from +0.0 is never -0.0 */
        }
    }
    for (int j = 0; j < deep; j++) {
        int c = cols[j], cnt = whi[j] - wlo[j];
        out[c] = cnt == 0 ? NAN : (float)(t1[j] / cnt);
        rejected[c] = (uint16_t)(n - cnt);
    }
}

static void FN(reduce_tile)(NATIVE_T *buf, int n, int tw, const params_t *q,
                            const int64_t *network, int npairs, int sorted, work_t *w,
                            float *out, uint16_t *rejected) {
    double *t1 = w->t1;
    if (q->method == MEAN) {
        FN(range_sums)(buf, 0, n, t1, NULL);
        for (int c = 0; c < tw; c++) {
            out[c] = (float)(t1[c] / n);
            rejected[c] = 0;
        }
        return;
    }
    if (!sorted) FN(sort_tile)(buf, network, npairs);
    if (q->method == MEDIAN) {
        FN(medians)(buf, n, t1);
        for (int c = 0; c < tw; c++) {
            out[c] = (float)t1[c];
            rejected[c] = 0;
        }
        return;
    }
    if (q->method == MINMAX) {
        int k = (int)q->clip;
        FN(range_sums)(buf, k, n - k, t1, NULL);
        for (int c = 0; c < tw; c++) {
            out[c] = (float)(t1[c] / (n - 2 * k));
            rejected[c] = (uint16_t)(2 * k);
        }
        return;
    }
    if (q->method == SIGMA) {
        FN(sigma_tile)(buf, n, tw, q, w, out, rejected);
        return;
    }
    if (q->method == WINSORIZED || q->method == LINEARFIT) { /* on float64 copies, as numba */
        double *restrict v = w->dv;
        for (int k = 0; k < n; k++)
            for (int c = 0; c < TILE; c++) v[(size_t)k * TILE + c] = (double)buf[(size_t)k * TILE + c];
        if (q->method == WINSORIZED)
            winsorized_tile(v, n, tw, q, w, out, rejected);
        else
            linearfit_tile(v, n, tw, q, w, out, rejected);
        return;
    }
    /* PERCENTILE: drop values more than a fraction of the median away from it */
    double *med = w->t2, *lower = w->lower, *upper = w->upper;
    FN(range_sums)(buf, 0, n, t1, NULL);
    FN(medians)(buf, n, med);
    for (int c = 0; c < TILE; c++) {
        lower[c] = med[c] - q->pct_low * fabs(med[c]);
        upper[c] = med[c] + q->pct_high * fabs(med[c]);
    }
    for (int c = 0; c < tw; c++) {
        int a = 0;
        while (a < n && (double)buf[(size_t)a * TILE + c] < lower[c]) a++;
        int b = n;
        while (b > a && (double)buf[(size_t)(b - 1) * TILE + c] > upper[c]) b--;
        int cnt = b - a;
        double sum = (a == 0 && b == n) ? t1[c] : FN(window_sum)(buf, c, a, b);
        out[c] = cnt == 0 ? (float)med[c] : (float)(sum / cnt);
        rejected[c] = (uint16_t)(n - cnt);
    }
}

#endif
