/*
 * Membership changes and leadership transfer, one at a time.
 *
 * Adding a node (the state machine of struct member_change):
 *   1. member_add: if id is not in the configuration, raft_add() makes it a
 *      spare (change_cb with promote_next set);
 *   2. change_cb: raft_assign(id, VOTER); libraft first catches the node up
 *      (rounds of replication, each bounded in time) and then commits the
 *      new configuration;
 *   3. change_cb: the user callback with the outcome.
 * Removing is one raft_remove. Invariants: at most one change is in flight
 * (c->change), so changes never overlap; a leadership transfer never
 * overlaps a change; the raft_transfer request stays alive in struct
 * consensus until its callback.
 */
#include "consensus_int.h"

#include <stdlib.h>

static const struct raft_server *find_server(struct consensus *c, uint64_t id)
{
    const struct raft_configuration *conf = &c->r->configuration;
    for (unsigned i = 0; i < conf->n; i++) {
        if (conf->servers[i].id == id) {
            return &conf->servers[i];
        }
    }
    return NULL;
}

static unsigned count_voters(struct consensus *c)
{
    const struct raft_configuration *conf = &c->r->configuration;
    unsigned n = 0;
    for (unsigned i = 0; i < conf->n; i++) {
        n += conf->servers[i].role == RAFT_VOTER;
    }
    return n;
}

static void change_finish(struct member_change *ch, int status, const char *message)
{
    struct consensus *c = ch->c;
    c->change = NULL;
    ch->cb(ch->arg, status, message);
    free(ch);
}

static void change_cb(struct raft_change *req, int status)
{
    struct member_change *ch = req->data;
    struct consensus *c = ch->c;
    char msg[CAIRN_ERRMSG_SIZE];
    int rv;

    if (status != 0) {
        snprintf(msg, sizeof msg, "membership change for node %llu: %s", (unsigned long long)ch->id,
                 raft_strerror(status));
        change_finish(ch, consensus_error(status), msg);
        return;
    }
    if (!ch->promote_next) {
        change_finish(ch, 0, NULL);
        return;
    }
    ch->promote_next = false;
    rv = raft_assign(c->r, &ch->req, ch->id, RAFT_VOTER, change_cb);
    if (rv != 0) {
        snprintf(msg, sizeof msg, "promote node %llu to voter: %s", (unsigned long long)ch->id,
                 raft_errmsg(c->r));
        change_finish(ch, consensus_error(rv), msg);
    }
}

/* Starts a change of id: checks that one may start now, allocates it, and
 * finds id's entry in the configuration (*server, NULL if absent). */
static int change_begin(struct consensus *c, uint64_t id, consensus_done_cb cb, void *arg,
                        struct member_change **out, const struct raft_server **server)
{
    struct member_change *ch;
    if (c->closing) {
        return CAIRN_ESHUTDOWN;
    }
    if (raft_state(c->r) != RAFT_LEADER) {
        return CAIRN_ENOTLEADER;
    }
    if (c->change != NULL || c->transferring) {
        return CAIRN_EBUSY;
    }
    ch = calloc(1, sizeof *ch);
    if (ch == NULL) {
        return CAIRN_ENOMEM;
    }
    ch->c = c;
    ch->id = id;
    ch->cb = cb;
    ch->arg = arg;
    ch->req.data = ch;
    *out = ch;
    *server = find_server(c, id);
    return 0;
}

int consensus_member_add(struct consensus *c, uint64_t id, const char *address,
                         consensus_done_cb cb, void *arg)
{
    const struct raft_server *s;
    struct member_change *ch;
    int rv;

    rv = change_begin(c, id, cb, arg, &ch, &s);
    if (rv != 0) {
        return rv;
    }
    if (s != NULL && s->role == RAFT_VOTER) {
        free(ch);
        return CAIRN_EEXIST;
    }
    if (s != NULL) {
        /* A previous attempt left it as a spare or standby: promote it. */
        rv = raft_assign(c->r, &ch->req, id, RAFT_VOTER, change_cb);
    } else {
        ch->promote_next = true;
        rv = raft_add(c->r, &ch->req, id, address, change_cb);
    }
    if (rv != 0) {
        free(ch);
        return consensus_error(rv);
    }
    c->change = ch;
    return 0;
}

int consensus_member_remove(struct consensus *c, uint64_t id, consensus_done_cb cb, void *arg)
{
    const struct raft_server *s;
    struct member_change *ch;
    int rv;

    rv = change_begin(c, id, cb, arg, &ch, &s);
    if (rv != 0) {
        return rv;
    }
    if (s == NULL) {
        free(ch);
        return CAIRN_ENOTFOUND;
    }
    if (s->role == RAFT_VOTER && count_voters(c) <= 1) {
        free(ch);
        return CAIRN_ECONFLICT;
    }
    rv = raft_remove(c->r, &ch->req, id, change_cb);
    if (rv != 0) {
        free(ch);
        return consensus_error(rv);
    }
    c->change = ch;
    return 0;
}

static void transfer_cb(struct raft_transfer *req)
{
    struct consensus *c = req->data;
    consensus_done_cb cb = c->transfer_cb;
    c->transferring = false;
    c->transfer_cb = NULL;
    if (cb != NULL) {
        cb(c->transfer_arg, 0, NULL);
    }
}

int consensus_transfer(struct consensus *c, uint64_t id, consensus_done_cb cb, void *arg)
{
    int rv;
    if (c->closing) {
        return CAIRN_ESHUTDOWN;
    }
    if (raft_state(c->r) != RAFT_LEADER) {
        return CAIRN_ENOTLEADER;
    }
    if (c->change != NULL || c->transferring) {
        return CAIRN_EBUSY;
    }
    c->transfer.data = c;
    rv = raft_transfer(c->r, &c->transfer, id, transfer_cb);
    if (rv != 0) {
        return consensus_error(rv);
    }
    c->transferring = true;
    c->transfer_cb = cb;
    c->transfer_arg = arg;
    return 0;
}
