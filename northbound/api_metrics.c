/*
 * GET /metrics: the node's Prometheus metrics in the text exposition
 * format 0.0.4. The HTTP counters and latency histograms come from
 * metrics.c (recorded by api.c's dispatcher, labelled by route pattern,
 * never by raw path); this file adds the raft gauges the backend reads
 * locally, the open event streams and a few process basics.
 *
 * No authentication: Prometheus scrapers rarely carry bearer tokens, and
 * nothing here names or counts an object, a tenant or a user; restrict the
 * port at the network if even request counts are sensitive.
 */
#include "api_int.h"

#include <stdio.h>
#include <sys/resource.h>
#include <unistd.h>

#include "metrics.h"

/* One gauge or counter with its HELP and TYPE lines. */
static int sample(struct cairn_buf *b, const char *name, const char *type, const char *help,
                  double value)
{
    return cairn_buf_printf(b, "# HELP %s %s\n# TYPE %s %s\n%s %.17g\n", name, help, name, type,
                            name, value);
}

static int raft_render(struct api *api, struct cairn_buf *b)
{
    struct api_raft_status st = {0};
    int rv = 0;
    if (api->backend.raft_status == NULL) {
        return 0;
    }
    api->backend.raft_status(api->backend.data, &st);
    rv |= sample(b, "cairn_raft_term", "gauge", "Current raft term of this node.", (double)st.term);
    rv |= sample(b, "cairn_raft_commit_index", "gauge", "Highest raft index known committed.",
                 (double)st.commit_index);
    rv |= sample(b, "cairn_raft_applied_index", "gauge",
                 "Highest raft index applied to the local store.", (double)st.applied_index);
    rv |= sample(b, "cairn_raft_last_index", "gauge", "Last index in the local raft log.",
                 (double)st.last_index);
    rv |= sample(b, "cairn_raft_leader", "gauge", "1 if this node is the leader, else 0.",
                 st.leader ? 1.0 : 0.0);
    rv |= sample(b, "cairn_raft_leader_changes_total", "counter",
                 "Times this node learned of a new leader since it started.",
                 (double)st.leader_changes);
    rv |= sample(b, "cairn_raft_proposed_entries_total", "counter",
                 "Raft entries of writes this node proposed as leader since it started.",
                 (double)st.proposed_entries);
    rv |= sample(b, "cairn_raft_proposed_commands_total", "counter",
                 "Writes those entries carried (more than entries: writes shared batched "
                 "entries).",
                 (double)st.proposed_commands);
    rv |= sample(b, "cairn_ownership_epoch", "gauge",
                 "The device ownership epoch this node applied.", (double)st.ownership_epoch);
    rv |= sample(b, "cairn_ownership_leased", "gauge",
                 "1 while this node may drive its devices (its lease holds), else 0.",
                 st.leased ? 1.0 : 0.0);
    rv |=
        sample(b, "cairn_ownership_epoch_changes_total", "counter",
               "Ownership epochs this node installed since it started.", (double)st.epoch_changes);
    rv |=
        sample(b, "cairn_ownership_handoffs_in_total", "counter",
               "Devices this node took over from others since it started.", (double)st.handoffs_in);
    rv |= sample(b, "cairn_ownership_handoffs_out_total", "counter",
                 "Devices this node handed over to others since it started.",
                 (double)st.handoffs_out);
    rv |= sample(b, "cairn_ownership_lease_lapses_total", "counter",
                 "Times this node found its ownership lease expired.", (double)st.lease_lapses);
    rv |= sample(b, "cairn_callhome_bound_total", "counter",
                 "Devices that called home here and were bound to their records.",
                 (double)st.callhome_bound);
    rv |= sample(b, "cairn_callhome_known_total", "counter",
                 "Calls home from devices already bound.", (double)st.callhome_known);
    rv |= sample(b, "cairn_callhome_refused_total", "counter",
                 "Calls home refused: unknown serial number or wrong activation code.",
                 (double)st.callhome_refused);
    rv |= sample(b, "cairn_callhome_throttled_total", "counter",
                 "Calls home closed unread after repeated bad attempts from the peer.",
                 (double)st.callhome_throttled);
    rv |= sample(b, "cairn_callhome_failed_total", "counter",
                 "Calls home whose SSH/NETCONF set-up or binding write failed.",
                 (double)st.callhome_failed);
    rv |= sample(b, "cairn_device_sessions", "gauge",
                 "NETCONF sessions this node holds open to devices (those it owns).",
                 (double)st.device_sessions);
    return rv;
}

static int process_render(struct cairn_buf *b)
{
    struct rusage ru;
    long pages = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    int rv = 0;
    if (f != NULL) {
        long size;
        if (fscanf(f, "%ld %ld", &size, &pages) != 2) {
            pages = 0;
        }
        fclose(f);
    }
    rv |= sample(b, "process_resident_memory_bytes", "gauge", "Resident memory size in bytes.",
                 (double)pages * (double)sysconf(_SC_PAGESIZE));
    if (getrusage(RUSAGE_SELF, &ru) == 0) {
        rv |= sample(b, "process_cpu_seconds_total", "counter",
                     "User and system CPU time spent in seconds.",
                     (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
                         (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6);
    }
    return rv;
}

int api_metrics_get(struct api_req *req)
{
    struct api *api = req->api;
    struct cairn_buf b;
    int rv;

    cairn_buf_init(&b);
    rv = metrics_render(api->metrics, &b);
    rv |= raft_render(api, &b);
    rv |= sample(&b, "cairn_store_revision", "gauge", "Global revision of the local store.",
                 (double)store_revision(api->store));
    rv |= sample(&b, "cairn_event_streams", "gauge", "Event streams open on this node.",
                 (double)atomic_load(&api->streams));
    rv |= process_render(&b);
    if (rv != 0) {
        cairn_buf_close(&b);
        return api_problem(req, 500, "internal", NULL, NULL, "out of memory rendering metrics");
    }
    http_reply(req->conn, 200, "text/plain; version=0.0.4; charset=utf-8", NULL, b.data, b.len);
    cairn_buf_close(&b);
    return 200;
}
