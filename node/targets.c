/*
 * Which devices a service configures: see targets.h.
 */
#include "targets.h"

#include <string.h>

/* True if ids (an array of strings, or NULL) holds id. */
static bool ids_hold(const json_t *ids, const char *id)
{
    size_t i;
    const json_t *v;
    if (id == NULL) {
        return false;
    }
    json_array_foreach(ids, i, v)
    {
        const char *s = json_string_value(v);
        if (s != NULL && strcmp(s, id) == 0) {
            return true;
        }
    }
    return false;
}

bool targets_match(const json_t *targets, const char *device_id, const char *site_id)
{
    return ids_hold(json_object_get(targets, "device_ids"), device_id) ||
           ids_hold(json_object_get(targets, "site_ids"), site_id);
}
