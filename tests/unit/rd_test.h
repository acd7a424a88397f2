/* rd_test: the few macros our unit tests need. A test file defines
 * functions `static void test_x(void)` and lists them in main with
 * RD_RUN(test_x); main returns rd_test_summary(). */
#ifndef RD_TEST_H
#define RD_TEST_H

#include <stdio.h>
#include <string.h>
#include <stdlib.h>

static int rd_test_failures;
static int rd_test_checks;
static const char *rd_test_current = "";

#define RD_CHECK(cond) do { \
    rd_test_checks++; \
    if (!(cond)) { \
        rd_test_failures++; \
        fprintf(stderr, "%s:%d: %s: check failed: %s\n", __FILE__, __LINE__, rd_test_current, #cond); \
    } \
} while (0)

#define RD_CHECK_EQ_INT(a, b) do { \
    long long rd_a_ = (long long)(a), rd_b_ = (long long)(b); \
    rd_test_checks++; \
    if (rd_a_ != rd_b_) { \
        rd_test_failures++; \
        fprintf(stderr, "%s:%d: %s: %s == %lld, expected %s == %lld\n", __FILE__, __LINE__, \
                rd_test_current, #a, rd_a_, #b, rd_b_); \
    } \
} while (0)

#define RD_CHECK_MEM(p, n, q, m) do { \
    size_t rd_n_ = (size_t)(n), rd_m_ = (size_t)(m); \
    rd_test_checks++; \
    if (rd_n_ != rd_m_ || (rd_n_ && memcmp((p), (q), rd_n_) != 0)) { \
        rd_test_failures++; \
        fprintf(stderr, "%s:%d: %s: %s (%zu bytes) differs from %s (%zu bytes)\n", __FILE__, \
                __LINE__, rd_test_current, #p, rd_n_, #q, rd_m_); \
    } \
} while (0)

#define RD_CHECK_STR(p, n, s) RD_CHECK_MEM(p, n, s, strlen(s))

#define RD_RUN(fn) do { rd_test_current = #fn; fn(); } while (0)

static inline int rd_test_summary(void)
{
    fprintf(stderr, "%d checks, %d failed\n", rd_test_checks, rd_test_failures);
    return rd_test_failures ? 1 : 0;
}

#endif
