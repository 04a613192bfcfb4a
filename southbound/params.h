/* Internal to southbound/: the service parameter checker (params.c). */
#ifndef SB_PARAMS_H
#define SB_PARAMS_H

#include "southbound.h"

/* Checks params against the JSON Schema of `type`; the message names the
 * parameter ("rules[1].action: must be one of permit, deny, reject"). */
int params_check(const char *type, const json_t *params, char *errmsg, size_t size);

#endif /* SB_PARAMS_H */
