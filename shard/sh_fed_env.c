/* The federation envelope: see sh_fed_env.h. */
#include <errno.h>
#include <string.h>

#include <jansson.h>

#include "pr_mp.h"
#include "roomd_module.h"
#include "sh_fed_env.h"

bool sh_fed_utf8_valid(const uint8_t *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        uint8_t c = s[i];
        if (c < 0x80) {
            i++;
            continue;
        }
        size_t k;
        uint32_t cp;
        if ((c & 0xe0) == 0xc0) { k = 1; cp = c & 0x1f; }
        else if ((c & 0xf0) == 0xe0) { k = 2; cp = c & 0x0f; }
        else if ((c & 0xf8) == 0xf0) { k = 3; cp = c & 0x07; }
        else return false;
        for (size_t j = 1; j <= k; j++) {
            if (i + j >= n || (s[i + j] & 0xc0) != 0x80)
                return false;
            cp = (cp << 6) | (s[i + j] & 0x3f);
        }
        if ((k == 1 && cp < 0x80) || (k == 2 && cp < 0x800) || (k == 3 && cp < 0x10000) ||
            cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
            return false;
        i += k + 1;
    }
    return true;
}

static int b64_val(uint8_t c)
{
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+' || c == '-') return 62;
    if (c == '/' || c == '_') return 63;
    return -1;
}

/* Standard or URL-safe alphabet, padding optional. Appends to out. */
static int b64_decode(const char *s, size_t n, rd_buf *out)
{
    while (n && s[n - 1] == '=')
        n--;
    if (n % 4 == 1)
        return -EBADMSG;
    uint8_t *w = rd_buf_reserve(out, n / 4 * 3 + 3);
    size_t o = 0;
    uint32_t acc = 0;
    int bits = 0;
    for (size_t i = 0; i < n; i++) {
        int v = b64_val((uint8_t)s[i]);
        if (v < 0)
            return -EBADMSG;
        acc = (acc << 6) | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            w[o++] = (uint8_t)(acc >> bits);
        }
    }
    rd_buf_commit(out, o);
    return 0;
}

static int env_type(const char *t, size_t n)
{
    if (n == 4 && memcmp(t, "text", 4) == 0)
        return ROOMD_TEXT;
    if (n == 6 && memcmp(t, "binary", 6) == 0)
        return ROOMD_BINARY;
    if (n == 8 && memcmp(t, "federate", 8) == 0)
        return SH_FED_FEDERATE;
    return -1;
}

/* JSON; binary data is decoded into e->bin. */
static int decode_json(const uint8_t *p, size_t n, sh_fed_env *e)
{
    json_t *root = json_loadb((const char *)p, n, 0, NULL);
    e->root = root;
    if (!json_is_object(root))
        return -EBADMSG;
    json_t *t = json_object_get(root, "type"), *d = json_object_get(root, "data");
    json_t *o = json_object_get(root, "origin"), *s = json_object_get(root, "seq");
    json_t *from = json_object_get(root, "from");
    if (!json_is_string(t) || !json_is_string(d) || (from && !json_is_string(from)))
        return -EBADMSG;
    e->type = env_type(json_string_value(t), json_string_length(t));
    if (e->type < 0)
        return -EBADMSG;
    if (e->type != ROOMD_BINARY) {
        e->data = (const uint8_t *)json_string_value(d);
        e->len = json_string_length(d);
    } else {
        if (b64_decode(json_string_value(d), json_string_length(d), &e->bin) < 0)
            return -EBADMSG;
        e->data = rd_buf_data(&e->bin) ? rd_buf_data(&e->bin) : (const uint8_t *)"";
        e->len = rd_buf_avail(&e->bin);
    }
    if (json_is_string(o)) {
        e->origin = json_string_value(o);
        e->origin_len = json_string_length(o);
    }
    if (json_is_integer(s) && json_integer_value(s) > 0)
        e->seq = (uint64_t)json_integer_value(s);
    if (from) {
        e->from = json_string_value(from);
        e->from_len = json_string_length(from);
    }
    return 0;
}

/* msgpack: a map with the same keys; data is bin or str. */
static int decode_mp(const uint8_t *p, size_t n, sh_fed_env *e)
{
    pr_mp_cur c;
    pr_mp_cur_init(&c, p, n);
    uint32_t nk;
    if (pr_mp_get_map(&c, &nk) < 0)
        return -EBADMSG;
    bool have_data = false;
    e->type = -1;
    for (uint32_t i = 0; i < nk; i++) {
        const char *k, *v;
        size_t kl, vl;
        if (pr_mp_get_str(&c, &k, &kl) < 0)
            return -EBADMSG;
        if (kl == 4 && memcmp(k, "type", 4) == 0) {
            if (pr_mp_get_str(&c, &v, &vl) < 0)
                return -EBADMSG;
            e->type = env_type(v, vl);
        } else if (kl == 4 && memcmp(k, "data", 4) == 0) {
            if (pr_mp_get_bin(&c, &e->data, &e->len) < 0)
                return -EBADMSG;
            have_data = true;
        } else if (kl == 6 && memcmp(k, "origin", 6) == 0) {
            if (pr_mp_get_str(&c, &e->origin, &e->origin_len) < 0)
                return -EBADMSG;
        } else if (kl == 3 && memcmp(k, "seq", 3) == 0) {
            if (pr_mp_get_uint(&c, &e->seq) < 0)
                return -EBADMSG;
        } else if (kl == 4 && memcmp(k, "from", 4) == 0) {
            if (pr_mp_get_str(&c, &e->from, &e->from_len) < 0)
                return -EBADMSG;
        } else if (pr_mp_skip(&c) < 0) {
            return -EBADMSG;
        }
    }
    if (e->type < 0 || !have_data)
        return -EBADMSG;
    if (!e->data)
        e->data = (const uint8_t *)"";
    return 0;
}

int sh_fed_env_decode(const uint8_t *p, size_t n, sh_fed_env *e)
{
    memset(e, 0, sizeof *e);
    size_t i = 0;
    while (i < n && (p[i] == ' ' || p[i] == '\t' || p[i] == '\r' || p[i] == '\n'))
        i++;
    int r = i < n && p[i] == '{' ? decode_json(p, n, e) : decode_mp(p, n, e);
    if (r < 0)
        return r;
    if (e->type == ROOMD_TEXT && !sh_fed_utf8_valid(e->data, e->len))
        return -EBADMSG;
    if (e->type != SH_FED_FEDERATE) {
        /* A broadcast is sequenced by origin or not at all; "from" means nothing. */
        if (!e->origin || e->seq == 0) {
            e->origin = NULL;
            e->origin_len = 0;
            e->seq = 0;
        }
        e->from = NULL;
        e->from_len = 0;
        return 0;
    }
    e->seq = 0; /* a federate's origin only marks the sender's own echo */
    if (e->len > SH_FED_MAX_FEDERATE)
        return -EBADMSG;
    if (e->from && (e->from_len > SH_FED_MAX_FROM || memchr(e->from, 0, e->from_len) ||
                    !sh_fed_utf8_valid((const uint8_t *)e->from, e->from_len)))
        return -EBADMSG;
    return 0;
}

void sh_fed_env_free(sh_fed_env *e)
{
    json_decref(e->root);
    e->root = NULL;
    rd_buf_free(&e->bin);
}

void sh_fed_env_encode(rd_buf *b, const sh_fed_env *e)
{
    bool origin = e->origin != NULL, seq = origin && e->seq > 0;
    bool from = e->type == SH_FED_FEDERATE && e->from != NULL;
    pr_mp_put_map(b, 2u + origin + seq + from);
    if (origin) {
        pr_mp_put_str(b, "origin", 6);
        pr_mp_put_str(b, e->origin, e->origin_len);
    }
    if (seq) {
        pr_mp_put_str(b, "seq", 3);
        pr_mp_put_uint(b, e->seq);
    }
    pr_mp_put_str(b, "type", 4);
    if (e->type == ROOMD_TEXT)
        pr_mp_put_str(b, "text", 4);
    else if (e->type == ROOMD_BINARY)
        pr_mp_put_str(b, "binary", 6);
    else
        pr_mp_put_str(b, "federate", 8);
    if (from) {
        pr_mp_put_str(b, "from", 4);
        pr_mp_put_str(b, e->from, e->from_len);
    }
    pr_mp_put_str(b, "data", 4);
    pr_mp_put_bin(b, e->data, e->len);
}
