/*
 * The groups of the northbound unit test executable (test_northbound.c
 * runs them all).
 */
#ifndef CAIRN_TEST_NORTHBOUND_H
#define CAIRN_TEST_NORTHBOUND_H

/* Validation tables and request helpers (test_helpers.c). */
int test_helpers_run(void);

/* The server and the API over HTTP, with a real store (test_http.c). */
int test_http_run(void);

/* The access decision table (test_rbac.c). */
int test_rbac_run(void);

/* Passwords, tokens, the login throttle (test_auth.c). */
int test_auth_run(void);

/* Authentication, users, roles and tenant isolation over HTTP
 * (test_users.c). */
int test_users_run(void);

/* The OpenAPI document, the event stream and the audit helpers
 * (test_events.c). */
int test_events_run(void);

/* Service dry runs and device operations over HTTP (test_ondemand.c). */
int test_ondemand_run(void);

#endif /* CAIRN_TEST_NORTHBOUND_H */
