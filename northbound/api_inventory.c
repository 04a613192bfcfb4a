/*
 * The inventory: sites (/api/v1/sites) and devices (/api/v1/devices),
 * served by the generic resource handlers (api_resource.c).
 *
 * A site belongs to a tenant (its parent, so a tenant with sites is not
 * deleted without cascade, and the tenant's "sites" quota counts it); its
 * name is unique within the tenant (the store's unique name is
 * "TENANT/NAME"). A device hangs under a site and inherits its tenant; its
 * serial number is unique within the tenant ("TENANT/SERIAL"), so a tenant
 * user learns nothing of other tenants' devices from a refused create.
 *
 * A device's password is write-only: it is kept in the stored body for the
 * southbound and never answered; a replace without one keeps the old one.
 * Its activation code (zero-touch onboarding) and observed status are set
 * by the server.
 */
#include "api_int.h"

#include <stdio.h>
#include <string.h>

#include <sodium.h>

/* "TENANT/NAME" of a scoped object whose field names it uniquely. */
static int scoped_name(struct api_build *b, const char *field, struct api_error *err)
{
    const char *value = json_string_value(json_object_get(b->stored, field));
    if (value == NULL) {
        return api_error_set(err, 400, "missing-field", field, "field \"%s\" is required", field);
    }
    snprintf(b->name, sizeof b->name, "%s/%s", b->tenant, value);
    return 0;
}

/* Sites ------------------------------------------------------------------ */

static int site_build(struct api *api, const struct store_object *old, struct api_build *b,
                      struct api_error *err)
{
    const json_t *links = json_object_get(b->stored, "wan_links");
    size_t i;
    const json_t *link;

    (void)api;
    (void)old;
    json_array_foreach(links, i, link)
    {
        for (size_t j = 0; j < i; j++) {
            if (json_equal(json_object_get(link, "name"),
                           json_object_get(json_array_get(links, j), "name"))) {
                char field[64];
                snprintf(field, sizeof field, "wan_links[%zu].name", i);
                return api_error_set(err, 422, "invalid-field", field,
                                     "WAN link name \"%s\" is used twice; name each link once",
                                     json_string_value(json_object_get(link, "name")));
            }
        }
    }
    return scoped_name(b, "name", err);
}

static const char *const site_filters[] = {"name", "role", NULL};

const struct api_resource api_site_resource = {
    .kind = STORE_KIND_SITE,
    .noun = "site",
    .path = "/api/v1/sites",
    .schema = &api_site_schema,
    .scope_from = API_SCOPE_FIELD,
    .filters = site_filters,
    .cascade = true,
    .build = site_build,
};

/* Devices ---------------------------------------------------------------- */

/* Activation codes: 20 characters of an unambiguous alphabet (100 bits),
 * grouped XXXXX-XXXXX-XXXXX-XXXXX. */
#define ACTIVATION_GROUPS 4
#define ACTIVATION_GROUP  5

static void activation_code(char out[ACTIVATION_GROUPS * (ACTIVATION_GROUP + 1)])
{
    static const char alphabet[] = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"; /* 32 */
    unsigned char rnd[ACTIVATION_GROUPS * ACTIVATION_GROUP];
    size_t o = 0;
    randombytes_buf(rnd, sizeof rnd);
    for (size_t i = 0; i < sizeof rnd; i++) {
        if (i > 0 && i % ACTIVATION_GROUP == 0) {
            out[o++] = '-';
        }
        out[o++] = alphabet[rnd[i] % 32];
    }
    out[o] = '\0';
    sodium_memzero(rnd, sizeof rnd);
}

static int device_build(struct api *api, const struct store_object *old, struct api_build *b,
                        struct api_error *err)
{
    json_t *mgmt = json_object_get(b->stored, "management");
    json_t *creds = json_object_get(b->stored, "credentials");
    json_t *prev = NULL;
    int rc;

    (void)api;
    if (mgmt != NULL && json_object_get(mgmt, "port") == NULL) {
        json_object_set_new(mgmt, "port", json_integer(830)); /* NETCONF over SSH */
    }
    if (json_object_get(b->stored, "desired_state") == NULL) {
        json_object_set_new(b->stored, "desired_state", json_string("managed"));
    }
    if (json_object_get(b->stored, "drift_policy") == NULL) {
        json_object_set_new(b->stored, "drift_policy", json_string("report"));
    }
    if (old == NULL) {
        char code[ACTIVATION_GROUPS * (ACTIVATION_GROUP + 1)];
        activation_code(code);
        json_object_set_new(b->stored, "activation_code", json_string(code));
        json_object_set_new(b->stored, "status",
                            json_pack("{s:s, s:b}", "state", "new", "reachable", 0));
    } else {
        /* Server-set fields stay; so does a password not sent again. */
        prev = json_loadb(old->body, old->body_len, 0, NULL);
        if (prev == NULL) {
            return api_error_set(err, 500, "internal", NULL, "device %s: unreadable stored body",
                                 old->id);
        }
        json_object_set(b->stored, "activation_code", json_object_get(prev, "activation_code"));
        json_object_set(b->stored, "status", json_object_get(prev, "status"));
        if (creds != NULL && json_object_get(creds, "password") == NULL) {
            json_t *pw = json_object_get(json_object_get(prev, "credentials"), "password");
            if (pw != NULL) {
                json_object_set(creds, "password", pw);
            }
        }
    }
    rc = scoped_name(b, "serial", err);
    json_decref(prev);
    return rc;
}

/* The node that drives the device in the epoch this node applied. */
static int device_decorate(struct api *api, const struct store_object *o, json_t *body)
{
    uint64_t owner = api != NULL && api->backend.device_owner != NULL
                         ? api->backend.device_owner(api->backend.data, o->id)
                         : 0;
    return json_object_set_new(body, "owner",
                               owner != 0 ? json_integer((json_int_t)owner) : json_null()) == 0
               ? 0
               : CAIRN_ENOMEM;
}

static const char *const device_filters[] = {"serial", "family", "desired_state", "name", NULL};

const struct api_resource api_device_resource = {
    .kind = STORE_KIND_DEVICE,
    .noun = "device",
    .path = "/api/v1/devices",
    .schema = &api_device_schema,
    .scope_from = API_SCOPE_PARENT,
    .parent_field = "site_id",
    .parent_kind = STORE_KIND_SITE,
    .parent_noun = "site",
    .filters = device_filters,
    .build = device_build,
    .decorate = device_decorate,
};
