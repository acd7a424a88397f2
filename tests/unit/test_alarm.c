/* Unit tests for the shard's alarm scheduler (shard/sh_alarm.c): due order,
 * retries with backoff, stale entries, and the on-disk index a restarted
 * shard reloads. The object side (sh_object_fire_alarm) is a stub here that
 * records what fired and answers as the test says. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

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

int main(void)
{
    rd_log_init("test", RD_LOG_ERROR, false);
    snprintf(dir, sizeof dir, "/tmp/roomd-alarm-XXXXXX");
    if (!mkdtemp(dir))
        return 1;
    RD_RUN(test_due_order_and_future);
    RD_RUN(test_retry_with_backoff);
    RD_RUN(test_index_survives_restart_and_stale_entries_go);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        return 1;
    return rd_test_summary();
}
