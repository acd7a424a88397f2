/* ws_deflate: permessage-deflate (RFC 7692) over zlib, server side. No I/O.
 *
 * Three parts:
 *   - ws_pmd_negotiate() reads the client's Sec-WebSocket-Extensions value,
 *     picks the first acceptable permessage-deflate offer under a policy and
 *     builds the response value;
 *   - ws_deflater compresses whole messages we send (RSV1 set on the first
 *     frame by the caller);
 *   - ws_inflater decompresses whole messages the client sent with RSV1
 *     (ws_event.compressed), with a hard cap on the output.
 *
 * Memory and sharing. zlib state is big (a deflater with a 15-bit window and
 * memLevel 8 is ~262 KiB, an inflater ~39 KiB), so state is only kept per
 * connection when context takeover is negotiated for that direction:
 *   - a deflater for "server_no_context_takeover" resets after every message
 *     and carries nothing from one message to the next. ONE such deflater can
 *     serve every connection whose negotiated params give the same
 *     ws_deflater_key(); its output for a message depends only on the
 *     message bytes, so the gateway compresses a broadcast once and sends the
 *     same payload to all those recipients.
 *   - an inflater for "client_no_context_takeover" resets after every
 *     message; ONE can serve every connection with the same
 *     ws_inflater_key().
 * A deflater or inflater WITH context takeover belongs to one connection.
 * ws_deflater_stateless()/ws_inflater_stateless() tell which is which.
 * Nothing here is thread-safe: a shared object is shared within one thread.
 *
 * Window bits 8. RFC 7692 allows 8..15, but zlib's raw deflate rejects 8.
 * A deflater negotiated at 8 runs zlib at 9: zlib never emits a match
 * farther back than its window minus 262 bytes (250 at 9 bits), so the
 * output fits a 256-byte window and a peer that asked for 8 decodes it. An
 * inflater negotiated at 8 uses a 9-bit window; a bigger window than the
 * sender used is always fine for inflate.
 *
 * Allocation failure aborts (zlib is given rd_xmalloc), so constructors do
 * not return NULL and OOM is never an error code here.
 */
#ifndef WS_DEFLATE_H
#define WS_DEFLATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "rd_buf.h"

/* Room for the longest response value ws_pmd_negotiate() builds, with NUL:
 * "permessage-deflate; server_no_context_takeover; client_no_context_takeover;
 *  server_max_window_bits=15; client_max_window_bits=15" is 126 bytes. */
#define WS_PMD_RESP_MAX 160

/* What the server is willing to do; one per listener, from the config. */
typedef struct ws_pmd_policy {
    bool enabled;                 /* false: negotiate never accepts */
    bool server_context_takeover; /* allow per-connection deflate contexts; default false */
    bool client_context_takeover; /* allow per-connection inflate contexts; default false */
    uint8_t max_window_bits;      /* cap for both directions, 9..15; default 15 */
    int mem_level;                /* zlib memLevel for our deflater, 1..9; default 8 */
    int level;                    /* zlib level for our deflater, 0..9 (-1 = zlib's 6); default 1 */
} ws_pmd_policy;

/* Recommended settings for when compression is on; whether it is on at all
 * is the config's call (.enabled). */
#define WS_PMD_POLICY_INIT { true, false, false, 15, 8, 1 }

/* The agreed parameters (RFC 7692 §7.1), effective values. */
typedef struct ws_pmd_params {
    bool server_no_context_takeover; /* our deflater resets after each message */
    bool client_no_context_takeover; /* the client resets: our inflater may too */
    uint8_t server_max_window_bits;  /* 8..15: window our deflater may use */
    uint8_t client_max_window_bits;  /* 8..15: largest window the client uses */
} ws_pmd_params;

/* Check a policy's ranges (for the config loader). 0, or -EINVAL with err.
 * The functions below clamp an out-of-range policy instead of failing. */
int ws_pmd_policy_check(const ws_pmd_policy *pol, char err[RD_ERR_LEN]);

/* Negotiate from one Sec-WebSocket-Extensions request value value[0..len)
 * (not NUL-terminated; several header lines must be joined with ", " first,
 * as HTTP list headers are). Offers are taken in the client's order of
 * preference; extensions other than permessage-deflate are ignored.
 *
 * Returns:
 *   1        accepted: *ret holds the agreed params, resp the NUL-terminated
 *            value for the response's Sec-WebSocket-Extensions header;
 *   0        no acceptable offer (none made, policy disabled, or every
 *            permessage-deflate offer had a bad parameter — RFC 7692 §7:
 *            decline that offer): respond without the header. err says why
 *            the first declined offer was declined ("" when there was none);
 *   -EINVAL  the header does not parse as an extension list (RFC 6455 §9.1):
 *            answer 400; err says where;
 *   -ENOBUFS resp_cap < WS_PMD_RESP_MAX (a caller bug).
 * *ret and resp are written only when 1 is returned. With policy->enabled
 * false the value is not even parsed (0 is returned).
 *
 * Decisions under the policy:
 *   - server_no_context_takeover is in the response when the client asked
 *     for it (MUST, §7.1.1.1) or the policy disallows server takeover;
 *   - client_no_context_takeover is in the response when the client offered
 *     it (saves us a context for free), or the policy disallows client
 *     takeover, or the client did not offer client_max_window_bits while
 *     max_window_bits < 15: it will then use a 15-bit window we cannot cap,
 *     so we at least keep that window out of per-connection state;
 *   - server_max_window_bits=min(offer, cap) when offered (MUST, §7.1.2.1);
 *     not sent otherwise (we still compress with the cap);
 *   - client_max_window_bits=min(offer or 15, cap) when offered and smaller
 *     than 15 or offered with a value; never when not offered (§7.1.2.2).
 */
int ws_pmd_negotiate(const char *value, size_t len, const ws_pmd_policy *policy,
                     ws_pmd_params *ret, char *resp, size_t resp_cap, char err[RD_ERR_LEN]);

/* ---- compression ------------------------------------------------------ */

typedef struct ws_deflater ws_deflater;

/* A deflater for our direction of a connection with params p (server side),
 * using pol's level and mem_level. Never NULL. The caller owns it. */
ws_deflater *ws_deflater_new(const ws_pmd_params *p, const ws_pmd_policy *pol);
void ws_deflater_free(ws_deflater *d); /* NULL is a no-op */

/* Compress one whole message in[0..len) and append the payload to out
 * (Z_SYNC_FLUSH output without its trailing 00 00 ff ff, RFC 7692 §7.2.1;
 * an empty message is always the single byte 00, an empty stored block,
 * §7.2.3.6). in is only read during the call and may be NULL when len is 0.
 * Returns 0, or -EIO if zlib fails (it does not with valid use); out is then
 * unchanged, the deflater is reset, and a connection with context takeover
 * must be closed (1011) since the peer's context no longer matches. */
int ws_deflater_message(ws_deflater *d, const uint8_t *in, size_t len, rd_buf *out);

/* True when the deflater keeps nothing between messages (shareable). */
bool ws_deflater_stateless(const ws_deflater *d);
/* Sharing key for stateless deflaters built from params p and policy pol:
 * two param sets with the same key can use the same deflater and get
 * byte-identical output. Meaningful only when p->server_no_context_takeover. */
unsigned ws_deflater_key(const ws_pmd_params *p, const ws_pmd_policy *pol);
/* Estimated heap bytes: zlib's documented deflate memory
 * (1 << (windowBits + 2)) + (1 << (memLevel + 9)) plus its state and ours. */
size_t ws_deflater_memory(const ws_deflater *d);

/* ---- decompression ---------------------------------------------------- */

typedef struct ws_inflater ws_inflater;

/* An inflater for the client's direction under params p. Never NULL. */
ws_inflater *ws_inflater_new(const ws_pmd_params *p);
void ws_inflater_free(ws_inflater *i); /* NULL is a no-op */

/* Decompress one whole message payload in[0..len) (all its frames
 * concatenated, as ws_reader delivers it) and append the result to out.
 * The RFC 7692 §7.2.2 tail 00 00 ff ff is fed to zlib after in, without a
 * copy of in. A final block (BFINAL, §7.2.3.3) ends the message; bytes after
 * it are ignored, and with context takeover the window is carried over.
 * Returns:
 *   0         out grew by the message (at most max_out bytes);
 *   -EMSGSIZE the message would inflate to more than max_out bytes: zlib is
 *             stopped as soon as the limit is crossed, so a bomb costs at
 *             most max_out + 1 bytes of output and the time to make them
 *             (close with 1009);
 *   -EBADMSG  corrupt or truncated deflate data (close with 1007), err says
 *             what zlib said.
 * On error out is as before the call (its capacity may have grown) and the
 * inflater is reset, so a shared stateless inflater stays usable; a
 * connection with client context takeover has lost its context and must be
 * closed, which the close codes above do anyway.
 * out grows by exact, bounded steps (never past its length at the call +
 * max_out + 1), not rd_buf's doubling, so a bomb cannot make it double past
 * the cap. in is only read during the call. */
int ws_inflater_message(ws_inflater *i, const uint8_t *in, size_t len, size_t max_out,
                        rd_buf *out, char err[RD_ERR_LEN]);

/* True when the inflater keeps nothing between messages (shareable). */
bool ws_inflater_stateless(const ws_inflater *i);
/* Sharing key for stateless inflaters: same key, same inflater. Meaningful
 * only when p->client_no_context_takeover. */
unsigned ws_inflater_key(const ws_pmd_params *p);
/* Estimated heap bytes: zlib's documented inflate memory
 * (1 << windowBits) plus its state and ours. */
size_t ws_inflater_memory(const ws_inflater *i);

#endif
