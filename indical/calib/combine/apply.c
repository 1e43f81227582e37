/* Applying masters to a 16-bit light in one pass over memory (indical.calib.apply_fast): each
 * stored pixel is read once and its calibrated float32 written once, in FITS byte order,
 * outside the GIL (ctypes releases it), so lights proceed on every core. The arithmetic is
 * float32, operation for operation that of apply.apply_masters on the same values. */
#include <stdint.h>
#include <string.h>

/* raw: `size` stored pixels (big-endian int16 bytes); value = int16 + bzero, minus pedestal[i]
 * and rate[i] * exposure_s, times recip[i] (each array may be NULL: not applied); out receives
 * the float32 bits in big-endian order. Returns how many values went below zero before the
 * flat. */
int64_t ind_calibrate_be16(const uint16_t *raw, int64_t size, float bzero, const float *pedestal,
                           const float *rate, float exposure_s, const float *recip,
                           uint32_t *out) {
    int64_t negative = 0;
    for (int64_t i = 0; i < size; i++) {
        uint16_t u = (uint16_t)((raw[i] << 8) | (raw[i] >> 8));
        float v = (float)(int16_t)u + bzero;
        if (pedestal) v -= pedestal[i];
        if (rate) v -= rate[i] * exposure_s;
        negative += v < 0.0f;
        if (recip) v *= recip[i];
        uint32_t bits;
        memcpy(&bits, &v, sizeof bits);
        out[i] = __builtin_bswap32(bits);
    }
    return negative;
}
