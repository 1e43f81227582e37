/* indical's combine kernel: every method (mean, median, min/max, sigma, winsorized, linear fit,
 * percentile) in float64 arithmetic with a fixed order of operations. Built by the package build
 * into the extension module indical.calib.combine._native (setup.py) with -O3
 * -ffp-contract=off (no fused multiply-adds, whose single rounding would make a build's last bits
 * depend on the CPU) and no -ffast-math; called through ctypes by native.py.
 *
 * One build runs on every x86-64 CPU and is fast on recent ones: native_avx2.c compiles this
 * file a second time for AVX2 (KERNEL_AVX2), and the entry points at the end pick that copy
 * when the CPU has AVX2 (ind_set_isa). Both copies do the same IEEE operations in the same
 * order (vectorised across pixels only, never across a sum), so they give the same bits.
 *
 * A call combines rows [r0, r1) of a stack. Each row is cut into tiles of TILE columns; a tile's
 * stacks (frames x TILE values) stay in L1 while they are precalibrated, scaled, sorted by the
 * comparator network (branch-free min/max across the tile, vectorised) and reduced. The 16-bit
 * entry point reads the stored big-endian integers of each frame itself with pread, a few rows
 * at a time, into the caller's scratch buffer: no memory maps, no page faults on them.
 *
 * params layout (options.CombineOptions.kernel_params): 0 sigma_low, 1 sigma_high,
 * 2 use_median, 3 maxiters (-1: no limit), 4 clip, 5 percentile_low, 6 percentile_high.
 *
 * `flags` (the entry points' former use_precal): FLAG_PRECAL subtracts `precal` (height x
 * width); FLAG_CELL_SCALES takes `scales` as 4 x n factors, scales[pos * n + k] for frame k's
 * pixels at position pos = 2 * (row & 1) + (column & 1) of the 2x2 colour filter cell (flats
 * of a colour sensor), where without it frame k's every pixel takes scales[k]. */

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

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define AVX2_CLONE 1 /* native_avx2.c builds the AVX2 copy */
#endif
#ifdef KERNEL_AVX2
#pragma GCC target("avx2") /* every function below, in this copy */
#define KERNEL_ISA avx2
#else
#define KERNEL_ISA base
#endif
#define KCAT2(a, b) a##_##b
#define KCAT(a, b) KCAT2(a, b)
#define KFN(name) KCAT(name, KERNEL_ISA) /* an entry point of this copy: name_base, name_avx2 */

#define ABI_VERSION 4
#define FLAG_PRECAL 1
#define FLAG_CELL_SCALES 2
#define TILE 128 /* columns per tile, a multiple of 8 */
#define READ_ROWS 4 /* rows read per pread round: frames x READ_ROWS x width stays in L2 */

enum { MEAN = 0, MEDIAN = 1, MINMAX = 2, SIGMA = 3, WINSORIZED = 4, LINEARFIT = 5, PERCENTILE = 6 };
#define MIN_KEEP 4      /* winsorized and linear fit never keep fewer */
#define N_STATE 16      /* TILE-long double arrays of per-column state (winsorized, linear fit) */
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
    int32_t *ist;               /* 6 x TILE: the same, integers */
    int16_t *ibuf;              /* n x TILE stored integers */
    double *dv;                 /* n x TILE: the sorted values as float64 (winsorized, linear fit) */
    void *buf;                  /* n x TILE values, float or double */
} work_t;

static size_t align64(size_t x) { return (x + 63) & ~(size_t)63; }

static size_t work_bytes(int n) {
    return align64(TILE * sizeof(double)) * 5 + align64((size_t)(n + 1) * TILE * sizeof(double)) * 2 +
           align64(TILE * sizeof(int32_t)) * 4 + align64(N_STATE * TILE * sizeof(double)) +
           align64(6 * TILE * sizeof(int32_t)) + align64((size_t)n * TILE * sizeof(int16_t)) +
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
    w.ist = (int32_t *)p; p += align64(6 * TILE * sizeof(int32_t));
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

/* x clamped to [lo, hi] (lo <= hi) as winsorizing clamps: below lo gives lo, above hi
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

/* Marks (flag[c] != 0) the tile's columns holding a NaN or an infinity and gives them their
 * answer in winsorized and linear fit: such a value makes the stack's sigma NaN (inf - inf,
 * 0 * inf or a NaN on the way), every comparison with it false, so winsorized and linear fit reject nothing
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

/* Packs the columns of a tile whose stacks are all finite into lanes [0, m) (the others were
 * answered by nonfinite_columns): col[j] is lane j's column, iter[j] its iteration count
 * (0). Returns m. */
static int pack_finite_lanes(double *v, int n, int tw, const int32_t *fin, int32_t *col,
                             int32_t *iter) {
    int m = 0;
    for (int c = 0; c < tw; c++) {
        if (fin[c]) continue;
        if (m != c)
            for (int k = 0; k < n; k++) v[(size_t)k * TILE + m] = v[(size_t)k * TILE + c];
        col[m] = c;
        iter[m] = 0;
        m++;
    }
    return m;
}

#define LANES 16 /* lanes of a block of clamped_moments: its sums stay in registers */

/* For lanes [0, m): the mean and the sum of squared deviations from it of the values of
 * window [flo, fhi) clamped to [L, H], each added in window order (a lane's values outside
 * its window add +0.0, which changes no sum that starts at +0.0). Blocks of LANES lanes, each
 * over the rows its windows span. */
__attribute__((noinline)) static void clamped_moments(const double *buf, int m,
                                                      const double *restrict flo,
                                                      const double *restrict fhi,
                                                      const double *restrict L,
                                                      const double *restrict H,
                                                      double *restrict mean, double *restrict ss) {
    for (int j0 = 0; j0 < m; j0 += LANES) {
        double lo[LANES], hi[LANES], l[LANES], h[LANES], s1[LANES], s2[LANES];
        int k0 = INT32_MAX, k1 = 0;
        for (int j = 0; j < LANES; j++) {
            int in = j0 + j < m;
            lo[j] = in ? flo[j0 + j] : 0.0; /* lanes past m: empty windows */
            hi[j] = in ? fhi[j0 + j] : 0.0;
            l[j] = in ? L[j0 + j] : 0.0;
            h[j] = in ? H[j0 + j] : 0.0;
            s1[j] = s2[j] = 0.0;
            if (in && lo[j] < hi[j]) {
                k0 = (int)lo[j] < k0 ? (int)lo[j] : k0;
                k1 = (int)hi[j] > k1 ? (int)hi[j] : k1;
            }
        }
        for (int k = k0; k < k1; k++) {
            const double *restrict row = buf + (size_t)k * TILE + j0;
            double fk = k;
            for (int j = 0; j < LANES; j++) {
                double x = clamp_to(row[j], l[j], h[j]);
                s1[j] += ((fk >= lo[j]) & (fk < hi[j])) ? x : 0.0;
            }
        }
        for (int j = 0; j < LANES; j++) s1[j] /= hi[j] - lo[j];
        for (int k = k0; k < k1; k++) {
            const double *restrict row = buf + (size_t)k * TILE + j0;
            double fk = k;
            for (int j = 0; j < LANES; j++) {
                double d = s1[j] - clamp_to(row[j], l[j], h[j]);
                s2[j] += ((fk >= lo[j]) & (fk < hi[j])) ? d * d : 0.0;
            }
        }
        int nj = m - j0 < LANES ? m - j0 : LANES;
        for (int j = 0; j < nj; j++) {
            mean[j0 + j] = s1[j];
            ss[j0 + j] = s2[j];
        }
    }
}

#define WINSOR_STEPS 50 /* the limit on winsorizing steps of one round */

/* The per-pixel state of winsorized_tile: TILE-long double arrays in work_t.st. */
enum { W_LO, W_HI, W_L, W_H, W_MED, W_SIG, W_MEAN, W_SS, W_V0, W_V1, W_ODD, W_PHASE, W_STEPS,
       W_REJECT, W_ALIVE, W_COUNT };

/* Lane j's window [lo, hi) and the values at its middle positions (unclamped). */
static void winsor_window(const double *v, int j, int lo, int hi, double *const *s) {
    int cnt = hi - lo, mid = lo + cnt / 2;
    s[W_LO][j] = lo;
    s[W_HI][j] = hi;
    s[W_V1][j] = v[(size_t)mid * TILE + j];
    s[W_V0][j] = cnt % 2 == 1 ? s[W_V1][j] : v[(size_t)(mid - 1) * TILE + j];
    s[W_ODD][j] = cnt % 2 == 1;
    s[W_MED][j] = cnt % 2 == 1 ? s[W_V1][j] : 0.5 * (s[W_V0][j] + s[W_V1][j]);
    s[W_L][j] = -INFINITY; /* the winsorized copy starts as the window itself */
    s[W_H][j] = INFINITY;
    s[W_PHASE][j] = 0.0;
    s[W_STEPS][j] = 0.0; /* (a NaN left in the work space would survive the * 0.0 below) */
    s[W_SIG][j] = 0.0;
}

/* One step's bookkeeping for lanes [0, m), vectorised: the new sigma; whether the lane
 * winsorizes again (then its next clamping range, 1.5 sigma around the median of the clamped
 * copy) or goes on to the rejection (reject = 1.0). */
__attribute__((noinline)) static void winsor_update(int m, double *restrict lo, double *restrict hi, double *restrict L,
                          double *restrict H, double *restrict sig, const double *restrict ss,
                          const double *restrict v0, const double *restrict v1,
                          const double *restrict odd, double *restrict phase,
                          double *restrict steps, double *restrict reject,
                          const double *restrict alive) {
    for (int j = 0; j < m; j++) {
        double ns = 1.134 * sqrt(ss[j] / (hi[j] - lo[j]));
        double first = phase[j] == 0.0 ? 1.0 : 0.0;
        double done = fabs(ns - sig[j]) <= 5e-4 * sig[j] ? 1.0 : 0.0;
        double st = (steps[j] + 1.0) * (1.0 - first); /* small integers: exact */
        int winsorize = (first != 0.0) | ((done == 0.0) & (st < WINSOR_STEPS));
        double l = L[j], h = H[j];
        double a0 = clamp_to(v0[j], l, h), a1 = clamp_to(v1[j], l, h);
        double wmed = odd[j] != 0.0 ? a1 : 0.5 * (a0 + a1);
        double lb = wmed - 1.5 * ns, hb = wmed + 1.5 * ns;
        L[j] = winsorize & (lb > l) ? lb : l;
        H[j] = winsorize & (hb < h) ? hb : h;
        sig[j] = ns;
        steps[j] = st;
        phase[j] = 1.0;
        reject[j] = (alive[j] != 0.0) & !winsorize ? 1.0 : 0.0;
    }
}

/* Winsorized sigma clipping of a sorted tile (the definition: winsorized_keep in
 * tests/unit/combine_reference.py, whose float64 operations these are, in the same order). A pixel's kept values are always a window [lo, hi) of its sorted stack (the
 * rejection tests are monotone in the value), and its winsorized copy is that window clamped
 * to [L, H] (clamping sorted values keeps them sorted, and successive clamps compose to one
 * as long as each new range holds the median, which it does): so every median is read at
 * the middle positions, O(1), instead of selecting on a copy, and a winsorizing step is two
 * passes over the window. The pixels still iterating are packed into the first m lanes of
 * the tile and stepped together (vectorised across lanes); finished ones drop out. */
static void winsorized_tile(double *v, int n, int tw, const params_t *q, work_t *w, float *out,
                            uint16_t *rejected) {
    if (n <= MIN_KEEP || !(q->maxiters == -1 || q->maxiters > 0)) {
        plain_mean(v, n, tw, w->t1, out, rejected);
        return;
    }
    double *s[W_COUNT];
    for (int i = 0; i < W_COUNT; i++) s[i] = w->st + (size_t)i * TILE;
    double *lo = s[W_LO], *hi = s[W_HI], *alive = s[W_ALIVE], *fsum = s[W_MEAN];
    int32_t *col = w->ist, *iter = w->ist + TILE, *fin = w->ist + 2 * TILE;
    int32_t *fin_lo = w->ist + 3 * TILE, *fin_hi = w->ist + 4 * TILE, *from = w->ist + 5 * TILE;
    const double sl = q->sigma_low, sh = q->sigma_high;
    nonfinite_columns(v, n, tw, fin, w->t1, out, rejected);
    int m = pack_finite_lanes(v, n, tw, fin, col, iter);
    for (int j = 0; j < m; j++) {
        alive[j] = 1.0;
        winsor_window(v, j, 0, n, s);
    }
    while (m > 0) {
        clamped_moments(v, m, lo, hi, s[W_L], s[W_H], s[W_MEAN], s[W_SS]);
        winsor_update(m, lo, hi, s[W_L], s[W_H], s[W_SIG], s[W_SS], s[W_V0], s[W_V1], s[W_ODD],
                      s[W_PHASE], s[W_STEPS], s[W_REJECT], alive);
        int n_fin = 0, dead = 0;
        for (int j = 0; j < m; j++) {
            dead += alive[j] == 0.0;
            if (s[W_REJECT][j] == 0.0) continue;
            /* reject beyond sigma_low / sigma_high winsorized sigmas from the median */
            int a0 = (int)lo[j], b0 = (int)hi[j];
            double md = s[W_MED][j], sg = s[W_SIG][j];
            int a = a0;
            while (a < b0 && !(md - v[(size_t)a * TILE + j] <= sl * sg)) a++;
            int b = b0;
            while (b > a && !(v[(size_t)(b - 1) * TILE + j] - md <= sh * sg)) b--;
            iter[j]++;
            if (b - a != b0 - a0 && b - a >= MIN_KEEP) {
                a0 = a;
                b0 = b;
                if (b - a > MIN_KEEP && (q->maxiters == -1 || iter[j] < q->maxiters)) {
                    winsor_window(v, j, a, b, s);
                    continue;
                }
            }
            fin[n_fin] = j;
            fin_lo[n_fin] = a0;
            fin_hi[n_fin] = b0;
            n_fin++;
            alive[j] = 0.0;
            lo[j] = n; /* an empty window, outside every other */
            hi[j] = 0.0;
            dead++;
        }
        if (n_fin > 0) { /* the finished windows' sums, in window order, side by side */
            int f0 = n, f1 = 0;
            for (int f = 0; f < n_fin; f++) {
                fsum[f] = 0.0;
                f0 = fin_lo[f] < f0 ? fin_lo[f] : f0;
                f1 = fin_hi[f] > f1 ? fin_hi[f] : f1;
            }
            int f = 0;
            for (; f + 4 <= n_fin; f += 4) { /* four chains at once, in registers */
                double a0 = 0.0, a1 = 0.0, a2 = 0.0, a3 = 0.0;
                const double *c0 = v + fin[f], *c1 = v + fin[f + 1], *c2 = v + fin[f + 2];
                const double *c3 = v + fin[f + 3];
                for (int k = f0; k < f1; k++) { /* finite values (see nonfinite_columns): */
                    size_t o = (size_t)k * TILE; /* 0.0 * x adds a zero */
                    a0 += (double)((k >= fin_lo[f]) & (k < fin_hi[f])) * c0[o];
                    a1 += (double)((k >= fin_lo[f + 1]) & (k < fin_hi[f + 1])) * c1[o];
                    a2 += (double)((k >= fin_lo[f + 2]) & (k < fin_hi[f + 2])) * c2[o];
                    a3 += (double)((k >= fin_lo[f + 3]) & (k < fin_hi[f + 3])) * c3[o];
                }
                fsum[f] = a0;
                fsum[f + 1] = a1;
                fsum[f + 2] = a2;
                fsum[f + 3] = a3;
            }
            for (; f < n_fin; f++) {
                double a = 0.0;
                for (int k = fin_lo[f]; k < fin_hi[f]; k++) a += v[(size_t)k * TILE + fin[f]];
                fsum[f] = a;
            }
            for (int f = 0; f < n_fin; f++) {
                int cnt = fin_hi[f] - fin_lo[f];
                out[col[fin[f]]] = (float)(fsum[f] / cnt);
                rejected[col[fin[f]]] = (uint16_t)(n - cnt);
            }
        }
        if (dead * 4 < m) continue;
        /* pack the live lanes to the front: their state, and their values row by row */
        int live = 0, k0 = n, k1 = 0;
        for (int j = 0; j < m; j++) {
            if (alive[j] == 0.0) continue;
            from[live] = j;
            k0 = (int)lo[j] < k0 ? (int)lo[j] : k0;
            k1 = (int)hi[j] > k1 ? (int)hi[j] : k1;
            if (live != j) {
                for (int i = 0; i < W_COUNT; i++) s[i][live] = s[i][j];
                col[live] = col[j];
                iter[live] = iter[j];
            }
            live++;
        }
        for (int k = k0; k < k1; k++) { /* from[t] >= t: moving up the row overwrites nothing unread */
            double *row = v + (size_t)k * TILE;
            for (int t = 0; t < live; t++) row[t] = row[from[t]];
        }
        m = live;
    }
}

/* One round of linear fitting for lanes [j0, j0 + LANES) (all within the tile): the least
 * squares line y = a + b * i through each lane's kept values (keep[k][j] = 1.0; i is a value's
 * rank among them, its index in the compacted stack), the mean absolute deviation from
 * it, and the values within sigma_low / sigma_high of those deviations: fresh[k][j] and
 * their count. Every sum adds the same values with the same weights in the same order as
 * linear_fit_keep in tests/unit/combine_reference.py. */
__attribute__((noinline)) static void fit_block(const double *v, const double *keep,
                                                double *fresh, int n, int j0,
                                                const double *restrict cnt, double sl, double sh,
                                                double *restrict fresh_cnt) {
    double sy[LANES], sxy[LANES], rank[LANES], a[LANES], b[LANES], sg[LANES], fc[LANES];
    for (int j = 0; j < LANES; j++) sy[j] = sxy[j] = rank[j] = 0.0;
    for (int k = 0; k < n; k++) {
        const double *restrict row = v + (size_t)k * TILE + j0;
        const double *restrict f = keep + (size_t)k * TILE + j0;
        for (int j = 0; j < LANES; j++) {
            double x = row[j], xi = rank[j] * x;
            sy[j] += f[j] != 0.0 ? x : 0.0;
            sxy[j] += f[j] != 0.0 ? xi : 0.0;
            rank[j] += f[j];
        }
    }
    for (int j = 0; j < LANES; j++) {
        double count = cnt[j0 + j];
        double sx = count * (count - 1.0) * 0.5;                      /* exact, as the sequential */
        double sxx = (count - 1.0) * count * (2.0 * count - 1.0) / 6.0; /* integer sums */
        double den = count * sxx - sx * sx;
        double bb = (count * sxy[j] - sx * sy[j]) / den;
        b[j] = den != 0.0 ? bb : 0.0;
        a[j] = (sy[j] - b[j] * sx) / count;
        sg[j] = rank[j] = 0.0;
    }
    for (int k = 0; k < n; k++) {
        const double *restrict row = v + (size_t)k * TILE + j0;
        const double *restrict f = keep + (size_t)k * TILE + j0;
        for (int j = 0; j < LANES; j++) {
            double d = fabs(row[j] - (a[j] + b[j] * rank[j]));
            sg[j] += f[j] != 0.0 ? d : 0.0;
            rank[j] += f[j];
        }
    }
    for (int j = 0; j < LANES; j++) {
        sg[j] /= cnt[j0 + j];
        fc[j] = rank[j] = 0.0;
    }
    for (int k = 0; k < n; k++) {
        const double *restrict row = v + (size_t)k * TILE + j0;
        const double *restrict f = keep + (size_t)k * TILE + j0;
        double *restrict g = fresh + (size_t)k * TILE + j0;
        for (int j = 0; j < LANES; j++) {
            double r = row[j] - (a[j] + b[j] * rank[j]);
            double kept = (f[j] != 0.0) & (-r <= sl * sg[j]) & (r <= sh * sg[j]) ? 1.0 : 0.0;
            g[j] = kept;
            fc[j] += kept;
            rank[j] += f[j];
        }
    }
    for (int j = 0; j < LANES; j++) fresh_cnt[j0 + j] = fc[j];
}

/* Lanes [0, m) with commit[j] = 1.0 take the fresh flags (fresh NULL: are cleared). */
__attribute__((noinline)) static void fit_commit(double *restrict keep,
                                                 const double *restrict fresh, int n, int m,
                                                 const double *restrict commit) {
    for (int k = 0; k < n; k++) {
        double *restrict f = keep + (size_t)k * TILE;
        if (fresh) {
            const double *restrict g = fresh + (size_t)k * TILE;
            for (int j = 0; j < m; j++) f[j] += commit[j] * (g[j] - f[j]); /* exact: 0.0 or 1.0 */
        } else {
            for (int j = 0; j < m; j++) f[j] *= 1.0 - commit[j];
        }
    }
}

/* Linear fit clipping of a sorted tile (the definition: linear_fit_keep in
 * tests/unit/combine_reference.py, whose float64 operations these are, in the same order). Instead of compacting each stack, its kept values are flagged (keep[k][j] = 1.0).
 * The pixels still fitting are packed into the first m lanes and fitted together, LANES at a
 * time (vectorised across lanes); finished ones drop out. */
static void linearfit_tile(double *v, int n, int tw, const params_t *q, work_t *w, float *out,
                           uint16_t *rejected) {
    if (n <= MIN_KEEP || !(q->maxiters == -1 || q->maxiters > 0)) {
        plain_mean(v, n, tw, w->t1, out, rejected);
        return;
    }
    double *keep = w->p1, *fresh = w->p2; /* n x TILE flags, 1.0 or 0.0 */
    double *cnt = w->st, *fresh_cnt = w->st + TILE, *fsum = w->st + 2 * TILE;
    double *commit = w->st + 3 * TILE, *clear = w->st + 4 * TILE;
    int32_t *col = w->ist, *iter = w->ist + TILE, *fin = w->ist + 2 * TILE;
    int32_t *from = w->ist + 3 * TILE, *alive = w->ist + 4 * TILE;
    nonfinite_columns(v, n, tw, fin, w->t1, out, rejected);
    int m = pack_finite_lanes(v, n, tw, fin, col, iter);
    for (int j = 0; j < m; j++) {
        alive[j] = 1;
        cnt[j] = n;
    }
    for (int j = m; j < TILE; j++) cnt[j] = 0.0; /* lanes past m: no values */
    for (int k = 0; k < n; k++)
        for (int j = 0; j < TILE; j++) keep[(size_t)k * TILE + j] = j < m ? 1.0 : 0.0;
    while (m > 0) {
        for (int j0 = 0; j0 < m; j0 += LANES)
            fit_block(v, keep, fresh, n, j0, cnt, q->sigma_low, q->sigma_high, fresh_cnt);
        /* the rejection is made where it leaves MIN_KEEP values or more */
        int n_fin = 0, dead = 0;
        for (int j = 0; j < m; j++) {
            commit[j] = clear[j] = 0.0;
            if (!alive[j]) {
                dead++;
                continue;
            }
            iter[j]++;
            int count = (int)cnt[j], fresh_n = (int)fresh_cnt[j];
            if (fresh_n != count && fresh_n >= MIN_KEEP) {
                commit[j] = 1.0;
                cnt[j] = fresh_n;
                if (fresh_n > MIN_KEEP && (q->maxiters == -1 || iter[j] < q->maxiters)) continue;
            }
            fin[n_fin++] = j;
            alive[j] = 0;
            dead++;
        }
        fit_commit(keep, fresh, n, m, commit);
        if (n_fin > 0) { /* the finished pixels' sums of kept values, in stack order */
            int f = 0;
            for (; f < n_fin; f += 4) { /* four chains at once, in registers */
                int g[4];
                for (int i = 0; i < 4; i++) g[i] = fin[f + i < n_fin ? f + i : f];
                double a0 = 0.0, a1 = 0.0, a2 = 0.0, a3 = 0.0;
                for (int k = 0; k < n; k++) { /* finite values (see nonfinite_columns): */
                    const double *row = v + (size_t)k * TILE, *fl = keep + (size_t)k * TILE;
                    a0 += fl[g[0]] * row[g[0]]; /* 0.0 * x adds a zero, 1.0 * x is x */
                    a1 += fl[g[1]] * row[g[1]];
                    a2 += fl[g[2]] * row[g[2]];
                    a3 += fl[g[3]] * row[g[3]];
                }
                fsum[f] = a0;
                if (f + 1 < n_fin) fsum[f + 1] = a1;
                if (f + 2 < n_fin) fsum[f + 2] = a2;
                if (f + 3 < n_fin) fsum[f + 3] = a3;
            }
            for (int f = 0; f < n_fin; f++) {
                int j = fin[f];
                out[col[j]] = (float)(fsum[f] / cnt[j]);
                rejected[col[j]] = (uint16_t)(n - (int)cnt[j]);
                cnt[j] = 0.0;
                clear[j] = 1.0;
            }
            fit_commit(keep, NULL, n, m, clear);
        }
        /* a round costs the same for any number of live lanes in a block of LANES: pack when
         * that drops a block */
        if (m - dead > 0 && (m - dead + LANES - 1) / LANES == (m + LANES - 1) / LANES) continue;
        /* pack the live lanes to the front: their state, values and flags row by row */
        int live = 0;
        for (int j = 0; j < m; j++) {
            if (!alive[j]) continue;
            from[live] = j;
            cnt[live] = cnt[j];
            col[live] = col[j];
            iter[live] = iter[j];
            alive[live] = 1;
            live++;
        }
        for (int j = live; j < m; j++) cnt[j] = 0.0;
        for (int k = 0; k < n; k++) { /* from[t] >= t: moving up the row overwrites nothing unread */
            double *row = v + (size_t)k * TILE, *fl = keep + (size_t)k * TILE;
            for (int t = 0; t < live; t++) {
                row[t] = row[from[t]];
                fl[t] = fl[from[t]];
            }
            for (int t = live; t < m; t++) fl[t] = 0.0;
        }
        m = live;
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

/* True when every frame has the same offset and the same positive scale: the value a kernel
 * sees is then one non-decreasing function of the stored integer (per pixel: the same
 * precalibration value for every frame), so sorting the integers and converting afterwards
 * gives exactly the sorted values, and 16-bit comparisons do twice the work per instruction.
 * (Equal values convert to the same bits: no -0.0 arises from an integer plus offsets.) */
static int uniform_16bit(const source_t *src, int n, const double *scales, int cells) {
    if (src->kind != SRC_BE16 || cells) return 0;
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
                         const double *precal, int flags, const double *scales,
                         const params_t *q, const int64_t *network, int npairs, float *out,
                         uint16_t *rejected, void *work) {
    work_t w = carve(work, n);
    int cells = (flags & FLAG_CELL_SCALES) != 0;
    int sort_ints = q->method != MEAN && uniform_16bit(src, n, scales, cells);
    for (int r = r0; r < r1; r++) {
        /* factors of even and odd columns in this row (the same without cell scales; TILE is
         * even, so a tile's column c has the parity of c) */
        const double *even = cells ? scales + (size_t)(r & 1) * 2 * n : scales;
        const double *odd = cells ? even + n : scales;
        for (int c0 = 0; c0 < width; c0 += TILE) {
            int tw = width - c0 < TILE ? width - c0 : TILE;
            const double *pre = (flags & FLAG_PRECAL) ? precal + (int64_t)r * width + c0 : NULL;
            float *o = out + (int64_t)r * width + c0;
            uint16_t *rj = rejected + (int64_t)r * width + c0;
            if (src->kind == SRC_F64) {
                fill_f64(src, n, r - src_row0, c0, tw, pre, even, odd, (double *)w.buf);
                reduce_tile_f64((double *)w.buf, n, tw, q, network, npairs, 0, &w, o, rj);
            } else if (sort_ints) {
                sorted_int16_tile(src, n, r - src_row0, c0, tw, network, npairs, w.ibuf);
                convert_int16_f32(w.ibuf, n, src->offsets[0], scales[0], pre, (float *)w.buf);
                reduce_tile_f32((float *)w.buf, n, tw, q, network, npairs, 1, &w, o, rj);
            } else {
                fill_f32(src, n, r - src_row0, c0, tw, pre, even, odd, (float *)w.buf);
                reduce_tile_f32((float *)w.buf, n, tw, q, network, npairs, 0, &w, o, rj);
            }
        }
    }
}

/* Combine rows [r0, r1) of a cube of float32 (is_f64 = 0) or float64 physical values,
 * cube[k][r - cube_row0][c], into out and rejected (full images, row r at r * width). */
int KFN(ind_combine_cube)(const void *cube, int is_f64, int n, int cube_rows, int width,
                          int cube_row0, int r0, int r1, const double *precal, int flags, const double *scales,
                     int method, const double *params, const int64_t *network, int npairs,
                     float *out, uint16_t *rejected, void *work) {
    const void *frames[n > 0 ? n : 1];
    size_t item = is_f64 ? sizeof(double) : sizeof(float);
    for (int k = 0; k < n; k++)
        frames[k] = (const char *)cube + (size_t)k * cube_rows * width * item;
    source_t src = {is_f64 ? SRC_F64 : SRC_F32, frames, width, NULL};
    params_t q = read_params(method, params);
    process_rows(&src, n, width, cube_row0, r0, r1, precal, flags, scales, &q, network,
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
int KFN(ind_combine_be16_files)(const int *fds, const int64_t *data_offsets,
                                const double *offsets, int n, int width, int r0, int r1, const double *precal,
                           int flags, const double *scales, int method,
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
        process_rows(&src, n, width, b0, b0, b1, precal, flags, scales, &q, network, npairs,
                     out, rejected, work);
    }
    return 0;
}

#ifndef KERNEL_AVX2 /* -------- once, in the baseline copy: what ctypes calls (native.py) */

int ind_abi_version(void) { return ABI_VERSION; }

/* Bytes of work space one thread needs for n frames (the 16-bit file reader needs
 * ind_read_bytes more). */
int64_t ind_work_bytes(int n) { return (int64_t)work_bytes(n); }

int64_t ind_read_bytes(int n, int width) {
    return (int64_t)align64((size_t)n * READ_ROWS * (size_t)width * sizeof(uint16_t));
}

#define CUBE_ARGS const void *cube, int is_f64, int n, int cube_rows, int width, int cube_row0, \
    int r0, int r1, const double *precal, int flags, const double *scales, int method, \
    const double *params, const int64_t *network, int npairs, float *out, uint16_t *rejected, \
    void *work
#define CUBE_CALL cube, is_f64, n, cube_rows, width, cube_row0, r0, r1, precal, flags, \
    scales, method, params, network, npairs, out, rejected, work
#define FILES_ARGS const int *fds, const int64_t *data_offsets, const double *offsets, int n, \
    int width, int r0, int r1, const double *precal, int flags, const double *scales, \
    int method, const double *params, const int64_t *network, int npairs, float *out, \
    uint16_t *rejected, void *work
#define FILES_CALL fds, data_offsets, offsets, n, width, r0, r1, precal, flags, scales, \
    method, params, network, npairs, out, rejected, work

static int isa = 0; /* 0: baseline copy, 1: AVX2 copy; set by ind_set_isa before any combine */

#ifdef AVX2_CLONE
int ind_combine_cube_avx2(CUBE_ARGS);
int ind_combine_be16_files_avx2(FILES_ARGS);
#endif

/* Which copy the entry points run: want -1 means the best this CPU runs, 0 the baseline, 1
 * AVX2 (the baseline where the CPU or the build lacks it). Returns the copy now in use. Not
 * to be called while a combine runs. */
int ind_set_isa(int want) {
    int best = 0;
#ifdef AVX2_CLONE
    __builtin_cpu_init();
    best = __builtin_cpu_supports("avx2") ? 1 : 0; /* also checks that the OS saves AVX state */
#endif
    isa = want < 0 || want > best ? best : want;
    return isa;
}

/* Combine rows [r0, r1) of a cube of float32 (is_f64 = 0) or float64 physical values,
 * cube[k][r - cube_row0][c], into out and rejected (full images, row r at r * width). */
int ind_combine_cube(CUBE_ARGS) {
#ifdef AVX2_CLONE
    if (isa == 1) return ind_combine_cube_avx2(CUBE_CALL);
#endif
    return ind_combine_cube_base(CUBE_CALL);
}

/* Combine rows [r0, r1) of n frames of big-endian 16-bit integers read from open files:
 * frame k's row r starts at byte data_offsets[k] + 2 * r * width of fds[k]; its physical value
 * is the stored integer plus offsets[k] (BZERO - pedestal). Returns 0, or k + 1 when reading
 * frame k failed (errno tells why). `work` holds ind_work_bytes + ind_read_bytes bytes. */
int ind_combine_be16_files(FILES_ARGS) {
#ifdef AVX2_CLONE
    if (isa == 1) return ind_combine_be16_files_avx2(FILES_CALL);
#endif
    return ind_combine_be16_files_base(FILES_CALL);
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

#endif /* KERNEL_AVX2 */

#else /* ------------------------------------------- per value type (float, double) part */

/* Tile columns [c0, c0 + tw) of source row `row` into buf (frames x TILE): precalibrated and
 * scaled exactly as the frames' physical values are defined: frame k's even columns by
 * even[k], its odd ones by odd[k] (c0 is even). One factor for both (the usual case) keeps the
 * plain loop: the select is only where the factors differ. */
static void FN(fill)(const source_t *src, int n, int row, int c0, int tw, const double *pre,
                     const double *even, const double *odd, NATIVE_T *buf) {
    for (int k = 0; k < n; k++) {
        double sk = even[k], so = odd[k];
        NATIVE_T *b = buf + (size_t)k * TILE;
        if (src->kind == SRC_BE16) {
            const uint16_t *s = (const uint16_t *)src->frames[k] + (int64_t)row * src->row_stride + c0;
            double off = src->offsets[k];
            if (so == sk) {
                for (int c = 0; c < tw; c++) {
                    uint16_t u = (uint16_t)((s[c] << 8) | (s[c] >> 8));
                    double x = (double)(int16_t)u + off;
                    if (pre) x -= pre[c];
                    b[c] = (NATIVE_T)(x * sk);
                }
            } else {
                for (int c = 0; c < tw; c++) {
                    uint16_t u = (uint16_t)((s[c] << 8) | (s[c] >> 8));
                    double x = (double)(int16_t)u + off;
                    if (pre) x -= pre[c];
                    b[c] = (NATIVE_T)(x * ((c & 1) ? so : sk));
                }
            }
        } else if (src->kind == SRC_F32) {
            const float *s = (const float *)src->frames[k] + (int64_t)row * src->row_stride + c0;
            for (int c = 0; c < tw; c++) {
                double x = (double)s[c];
                if (pre) x -= pre[c];
                b[c] = (NATIVE_T)(x * ((c & 1) ? so : sk));
            }
        } else {
            const double *s = (const double *)src->frames[k] + (int64_t)row * src->row_stride + c0;
            for (int c = 0; c < tw; c++) {
                double x = s[c];
                if (pre) x -= pre[c];
                b[c] = (NATIVE_T)(x * ((c & 1) ? so : sk));
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

/* min as `b < a ? b : a`, max as `b > a ? b : a` (branch-free selects); a NaN lands where
 * these put it (network_sort in tests/unit/combine_reference.py does the same). */
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

/* Column c's sum over its window, added from lo up (as seq_sum in the reference and the
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

/* One pass of astropy's sigma clipping for column c with window [*a, *b) and the bounds this pass
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

/* The bounds of a pass over window [a, b) from prefix sums, as the one-pass formula gives
 * them (one-pass variance; tol is how far its rounding could move a bound). */
static void FN(pass_bounds)(double s1, double s2, int cnt, double median, const params_t *q,
                            double *lower, double *upper, double *tol) {
    double mean = s1 / cnt;
    double var = s2 / cnt - mean * mean;
    double std = var < 0.0 ? 0.0 : sqrt(var); /* rounding can make it < 0; NaN stays */
    double cen = q->use_median ? median : mean;
    *lower = cen - q->sigma_low * std;
    *upper = cen + q->sigma_high * std;
    *tol = 1e-9 * (fabs(cen) + fabs(mean) + std * (q->sigma_low + q->sigma_high) + 1.0);
}

/* Sigma clipping of a sorted tile. The first pass (the whole stack) is computed for all
 * columns at once from the stacks' sums; most pixels keep every value and stop there. The
 * columns whose window moved get their prefix sums (computed together: independent chains
 * overlap) and continue one by one, pass by pass, as sigma_window in the reference does
 * (which stops each pixel where astropy would). */
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
        double std = var < 0.0 ? 0.0 : sqrt(var); /* rounding can make it < 0; NaN stays */
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
    if (q->method == WINSORIZED || q->method == LINEARFIT) { /* on float64 copies */
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
