/*
 * Tessera: INCRBYFLOAT arithmetic in C `long double`, mirroring Redis 7.0
 * (string2ld() parsing, `value += incr`, NaN/Inf check and
 * ld2string(..., LD_STR_HUMAN) formatting) so results are byte-identical
 * to redis-server on the same platform.
 *
 * Rust has no `long double`, so this small file is compiled by build.rs
 * with the `cc` crate and called through FFI (see src/util/num.rs).
 */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Same bound as Redis MAX_LONG_DOUBLE_CHARS: input strings must be shorter,
 * and the formatted output buffer has this size. */
#define TESSERA_MAX_LONG_DOUBLE_CHARS (5 * 1024)

#define TESSERA_LD_OK 0
#define TESSERA_LD_CUR_NOT_FLOAT 1
#define TESSERA_LD_INCR_NOT_FLOAT 2
#define TESSERA_LD_NAN_OR_INF 3
#define TESSERA_LD_OUT_TOO_SMALL 4

/* Strict string -> long double, as Redis string2ld(): no leading space, no
 * trailing bytes (an embedded NUL counts as trailing), no overflow to
 * +-HUGE_VAL, no underflow to zero, no NaN; length in 1..5119. */
static int tessera_parse_ld(const char *s, size_t slen, long double *out) {
    char buf[TESSERA_MAX_LONG_DOUBLE_CHARS];
    char *end;
    long double v;

    if (slen == 0 || slen >= sizeof(buf)) return 0;
    memcpy(buf, s, slen);
    buf[slen] = '\0';

    errno = 0;
    v = strtold(buf, &end);
    if (isspace((unsigned char)buf[0])) return 0;
    if (end[0] != '\0' || (size_t)(end - buf) != slen) return 0;
    if (errno == ERANGE &&
        (v == HUGE_VAL || v == -HUGE_VAL || fpclassify(v) == FP_ZERO))
        return 0;
    if (errno == EINVAL) return 0;
    if (isnan(v)) return 0;
    *out = v;
    return 1;
}

/* long double -> human friendly string, as Redis ld2string(LD_STR_HUMAN)
 * with a buffer of MAX_LONG_DOUBLE_CHARS bytes. Returns the length, or 0
 * when the text would not fit (Redis then stores an empty string). */
static size_t tessera_format_ld_human(char *buf, size_t len, long double v) {
    size_t l;
    int n;

    if (isinf(v)) {
        if (len < 5) return 0;
        if (v > 0) {
            memcpy(buf, "inf", 3);
            l = 3;
        } else {
            memcpy(buf, "-inf", 4);
            l = 4;
        }
        buf[l] = '\0';
        return l;
    }
    n = snprintf(buf, len, "%.17Lf", v);
    if (n < 0) return 0;
    l = (size_t)n;
    if (l + 1 > len) return 0;
    if (strchr(buf, '.') != NULL) {
        char *p = buf + l - 1;
        while (*p == '0') {
            p--;
            l--;
        }
        if (*p == '.') l--;
    }
    if (l == 2 && buf[0] == '-' && buf[1] == '0') {
        buf[0] = '0';
        l = 1;
    }
    buf[l] = '\0';
    return l;
}

/* INCRBYFLOAT core.
 *   cur/curlen: the stored string value, only read when has_cur != 0
 *               (a missing key counts as 0).
 *   incr/incrlen: the increment argument.
 * On TESSERA_LD_OK the result (not NUL-terminated) is copied to out and its
 * length stored in *outlen. If outcap is too small, TESSERA_LD_OUT_TOO_SMALL
 * is returned with *outlen set to the required length.
 * The stored value is validated before the increment, like Redis. */
int tessera_incrbyfloat(const char *cur, size_t curlen, int has_cur,
                        const char *incr, size_t incrlen,
                        char *out, size_t outcap, size_t *outlen) {
    long double value = 0, by = 0;
    char buf[TESSERA_MAX_LONG_DOUBLE_CHARS];
    size_t l;

    *outlen = 0;
    if (has_cur) {
        if (!tessera_parse_ld(cur, curlen, &value)) return TESSERA_LD_CUR_NOT_FLOAT;
    }
    if (!tessera_parse_ld(incr, incrlen, &by)) return TESSERA_LD_INCR_NOT_FLOAT;

    value += by;
    if (isnan(value) || isinf(value)) return TESSERA_LD_NAN_OR_INF;

    l = tessera_format_ld_human(buf, sizeof(buf), value);
    *outlen = l;
    if (l > outcap) return TESSERA_LD_OUT_TOO_SMALL;
    if (l) memcpy(out, buf, l);
    return TESSERA_LD_OK;
}

/* Strict validity check of a long double string (Redis string2ld()).
 * Returns 1 when valid, 0 otherwise. */
int tessera_string2ld_valid(const char *s, size_t slen) {
    long double v;
    return tessera_parse_ld(s, slen, &v);
}
