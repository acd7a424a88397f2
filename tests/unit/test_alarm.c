/* Unit tests for the shard's alarm scheduler (shard/sh_alarm.c): due order,
 * retries with backoff, stale entries, and the on-disk index a restarted
 * shard reloads. The object side (sh_object_fire_alarm) is a stub here that
 * records what fired and answers as the test says. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "rd_hash.h"
#include "rd_log.h"
#include "rd_test.h"
#include "rd_time.h"
#include "sh.h"

sh_server sh;

static char fired[64][64];
static unsigned fired_retries[64];
static int nfired;
static int answer; /* what the stub returns */

int sh_object_fire_alarm(const char *key, size_t klen, uint64_t at, unsigned retries)
{
    if (nfired < 64) {
        snprintf(fired[nfired], sizeof fired[nfired], "%.*s", (int)klen, key);
        fired_retries[nfired] = retries;
        nfired++;
    }
    return answer;
}

/* The link stand-in: what the scheduler sends a gateway lands in link.out. */
static int flushes;
void sh_link_want_flush(sh_link *l)
{
    flushes++;
}

static char dir[64];

/* Each test uses its own shard name, hence its own index. */
static void start(const char *name)
{
    char err[RD_ERR_LEN];
    memset(&sh, 0, sizeof sh);
    sh.cfg.name = (char *)name;
    sh.cfg.data_dir = dir;
    RD_CHECK_EQ_INT(sh_alarm_init(err), 0);
    nfired = 0;
    answer = 0;
}

static void test_due_order_and_future(void)
{
    start("order");
    uint64_t now = rd_wall_ms();
    RD_CHECK_EQ_INT(sh_alarm_schedule("c/late", 6, now - 10, 0), 0);
    RD_CHECK_EQ_INT(sh_alarm_schedule("c/early", 7, now - 1000, 0), 0);
    RD_CHECK_EQ_INT(sh_alarm_schedule("c/mid", 5, now - 500, 0), 0);
    RD_CHECK_EQ_INT(sh_alarm_schedule("c/future", 8, now + 3600000, 0), 0);
    sh_alarm_tick();
    RD_CHECK_EQ_INT(nfired, 3);
    RD_CHECK(strcmp(fired[0], "c/early") == 0);
    RD_CHECK(strcmp(fired[1], "c/mid") == 0);
    RD_CHECK(strcmp(fired[2], "c/late") == 0);
    RD_CHECK_EQ_INT(sh.nalarms, 1); /* the future one waits */
    RD_CHECK_EQ_INT(sh.alarms_fired, 3);
    sh_alarm_shutdown();
}

static void test_retry_with_backoff(void)
{
    start("retry");
    RD_CHECK_EQ_INT(sh_alarm_schedule("c/flaky", 7, rd_wall_ms() - 1, 0), 0);
    answer = -EIO;
    sh_alarm_tick();
    RD_CHECK_EQ_INT(nfired, 1);
    RD_CHECK_EQ_INT(fired_retries[0], 0);
    /* Rescheduled one second out, with the retry count raised. */
    RD_CHECK_EQ_INT(sh.nalarms, 1);
    RD_CHECK(sh.alarms[0].retries == 1);
    RD_CHECK(sh.alarms[0].at > rd_wall_ms() + 500 && sh.alarms[0].at <= rd_wall_ms() + 1000);
    sh_alarm_tick(); /* not due yet */
    RD_CHECK_EQ_INT(nfired, 1);
    /* Make it due again: the second failure waits 2 s. */
    sh.alarms[0].at = rd_wall_ms() - 1;
    sh_alarm_tick();
    RD_CHECK_EQ_INT(nfired, 2);
    RD_CHECK_EQ_INT(fired_retries[1], 1);
    RD_CHECK(sh.alarms[0].retries == 2 && sh.alarms[0].at > rd_wall_ms() + 1500);
    /* Ten tries in all, then it is given up. */
    for (int i = 0; i < 20 && sh.nalarms; i++) {
        sh.alarms[0].at = rd_wall_ms() - 1;
        sh_alarm_tick();
    }
    RD_CHECK_EQ_INT(sh.nalarms, 0);
    RD_CHECK_EQ_INT(nfired, 10);
    sh_alarm_shutdown();
}

static void test_index_survives_restart_and_stale_entries_go(void)
{
    start("restart");
    uint64_t later = rd_wall_ms() + 3600000;
    for (int i = 0; i < 1500; i++) { /* more than one page of the index */
        char key[32];
        int n = snprintf(key, sizeof key, "c/o%04d", i);
        RD_CHECK_EQ_INT(sh_alarm_schedule(key, (size_t)n, later + (uint64_t)i, 0), 0);
    }
    RD_CHECK_EQ_INT(sh_alarm_schedule("c/stale", 7, rd_wall_ms() - 1, 0), 0);
    sh_alarm_shutdown();
    /* A restarted shard reloads every entry of its index. */
    start("restart");
    RD_CHECK_EQ_INT(sh.nalarms, 1501);
    answer = -ENOENT; /* the object has no alarm any more: forget the entry */
    sh_alarm_tick();
    RD_CHECK_EQ_INT(nfired, 1);
    RD_CHECK(strcmp(fired[0], "c/stale") == 0);
    sh_alarm_shutdown();
    start("restart");
    RD_CHECK_EQ_INT(sh.nalarms, 1500); /* the stale one is gone from the index */
    RD_CHECK(sh.alarms[0].at == later);
    sh_alarm_shutdown();
}

/* Decode the frames in b: the ALARM_MOVE/ALARM_MOVED keys, in order. */
static int sent_keys(rd_buf *b, int type, char keys[][32], int max)
{
    int n = 0;
    const uint8_t *body;
    size_t len;
    int used;
    while ((used = pr_frame_next(rd_buf_data(b), rd_buf_avail(b), PR_FRAME_MAX, &body, &len)) > 0) {
        pr_msg m;
        char err[RD_ERR_LEN];
        RD_CHECK_EQ_INT(pr_msg_decode(body, len, &m, err), 0);
        if (m.type == type && n < max)
            snprintf(keys[n++], 32, "%.*s", (int)m.u.alarm.key.n, m.u.alarm.key.p);
        rd_buf_consume(b, (size_t)used);
    }
    return n;
}

static void set_members(sh_link *l, const char *const *names, size_t n)
{
    rd_buf b = RD_BUF_INIT;
    size_t start = pr_frame_begin(&b);
    pr_mp_put_array(&b, 2);
    pr_mp_put_uint(&b, PR_SET);
    pr_mp_put_array(&b, (uint32_t)n);
    for (size_t i = 0; i < n; i++)
        pr_mp_put_str(&b, names[i], strlen(names[i]));
    RD_CHECK_EQ_INT(pr_frame_end(&b, start), 0);
    pr_msg m;
    char err[RD_ERR_LEN];
    RD_CHECK_EQ_INT(pr_msg_decode(rd_buf_data(&b) + 4, rd_buf_avail(&b) - 4, &m, err), 0);
    sh_alarm_set_members(&m);
    rd_buf_free(&b);
    (void)l;
}

/* Alarms follow their objects: offered to the new owner on SET, offered
 * again instead of fired when due, dropped once the owner confirms. */
static void test_alarms_move_with_the_set(void)
{
    start("mover");
    sh_link link;
    memset(&link, 0, sizeof link);
    link.hello = true;
    sh.links = &link;
    uint64_t later = rd_wall_ms() + 3600000;
    /* Which keys stay with "mover" among {mover, other}: rendezvous decides. */
    static const char *const two[] = { "mover", "other" };
    char keys[40][32];
    int mine = 0, theirs = 0;
    char mine_key[32] = "", their_key[32] = "";
    for (int i = 0; i < 40; i++) {
        snprintf(keys[i], sizeof keys[i], "c/k%02d", i);
        RD_CHECK_EQ_INT(sh_alarm_schedule(keys[i], strlen(keys[i]), later, 0), 0);
        if (rd_hrw_pick(keys[i], strlen(keys[i]), two, 2) == 0) {
            mine++;
            snprintf(mine_key, sizeof mine_key, "%s", keys[i]);
        } else {
            theirs++;
            snprintf(their_key, sizeof their_key, "%s", keys[i]);
        }
    }
    RD_CHECK(mine > 0 && theirs > 0);
    RD_CHECK_EQ_INT(sh_alarm_foreign(), 0); /* no set yet: every key is ours */
    set_members(&link, two, 2);
    RD_CHECK_EQ_INT(sh_alarm_foreign(), theirs);
    char got[40][32];
    RD_CHECK_EQ_INT(sent_keys(&link.out, PR_ALARM_MOVE, got, 40), theirs);

    /* A due alarm of the other shard's is offered again, not fired. */
    sh.alarms[0].at = rd_wall_ms() - 1;
    char due[32];
    snprintf(due, sizeof due, "%s", sh.alarms[0].key);
    bool due_theirs = rd_hrw_pick(due, strlen(due), two, 2) == 1;
    sh_alarm_tick();
    if (due_theirs) {
        RD_CHECK_EQ_INT(nfired, 0);
        RD_CHECK_EQ_INT(sent_keys(&link.out, PR_ALARM_MOVE, got, 40), 1);
        RD_CHECK(strcmp(got[0], due) == 0);
    } else {
        RD_CHECK_EQ_INT(nfired, 1);
    }

    /* The owner confirms one: it leaves our index (and is never fired here). */
    rd_buf b = RD_BUF_INIT;
    RD_CHECK_EQ_INT(pr_enc_alarm(&b, PR_ALARM_MOVED, their_key, strlen(their_key), later, 0, "mover", 5), 0);
    pr_msg m;
    char err[RD_ERR_LEN];
    RD_CHECK_EQ_INT(pr_msg_decode(rd_buf_data(&b) + 4, rd_buf_avail(&b) - 4, &m, err), 0);
    size_t before = sh_alarm_foreign();
    sh_alarm_given(&m);
    RD_CHECK_EQ_INT(sh_alarm_foreign(), before - 1);
    /* A confirmation for a key we own again (the set changed back) keeps it. */
    rd_buf_reset(&b, 0);
    RD_CHECK_EQ_INT(pr_enc_alarm(&b, PR_ALARM_MOVED, mine_key, strlen(mine_key), later, 0, "mover", 5), 0);
    RD_CHECK_EQ_INT(pr_msg_decode(rd_buf_data(&b) + 4, rd_buf_avail(&b) - 4, &m, err), 0);
    sh_alarm_given(&m);
    static const char *const alone[] = { "mover" };
    set_members(&link, alone, 1);
    RD_CHECK_EQ_INT(sh_alarm_foreign(), 0);

    /* Taking one over: recorded in our index and confirmed to the giver. */
    rd_buf_reset(&b, 0);
    RD_CHECK_EQ_INT(pr_enc_alarm(&b, PR_ALARM_MOVE, "c/given", 7, later, 3, "elsewhere", 9), 0);
    RD_CHECK_EQ_INT(pr_msg_decode(rd_buf_data(&b) + 4, rd_buf_avail(&b) - 4, &m, err), 0);
    size_t n0 = sh.nalarms;
    sh_alarm_take(&link, &m);
    RD_CHECK_EQ_INT(sh.nalarms, n0 + 1);
    RD_CHECK_EQ_INT(sent_keys(&link.out, PR_ALARM_MOVED, got, 40), 1);
    RD_CHECK(strcmp(got[0], "c/given") == 0);
    rd_buf_free(&b);
    rd_buf_free(&link.out);
    sh.links = NULL;
    sh_alarm_shutdown();
    /* Restarted: the handed-over key is not in the index any more. */
    start("mover");
    RD_CHECK_EQ_INT(sh.nalarms, 40);
    sh_alarm_shutdown();
}

int main(void)
{
    rd_log_init("test", RD_LOG_ERROR, false);
    snprintf(dir, sizeof dir, "/tmp/roomd-alarm-XXXXXX");
    if (!mkdtemp(dir))
        return 1;
    RD_RUN(test_due_order_and_future);
    RD_RUN(test_retry_with_backoff);
    RD_RUN(test_index_survives_restart_and_stale_entries_go);
    RD_RUN(test_alarms_move_with_the_set);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        return 1;
    return rd_test_summary();
}
