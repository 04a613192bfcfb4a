/*
 * Which devices a service configures (targets.c): a service's "targets"
 * names devices (device_ids) and sites (site_ids); a site stands for every
 * device in it, including those added after the service was written. Kept
 * apart from the device controller (devices.c) so that it is unit-tested
 * alone.
 *
 * Threads: pure functions, any thread.
 */
#ifndef CAIRN_TARGETS_H
#define CAIRN_TARGETS_H

#include <stdbool.h>

#include <jansson.h>

/* True if targets (a service's "targets" object, or NULL) names device_id
 * or site_id (the device's site, or NULL if unknown). */
bool targets_match(const json_t *targets, const char *device_id, const char *site_id);

#endif
