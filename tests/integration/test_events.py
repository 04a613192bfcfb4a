#!/usr/bin/env python3
"""The event stream (GET /api/v1/events, Server-Sent Events) on a real
3-node cluster: changes written through every node arrive on a stream of
another node in revision order with nothing missing and each object as its
GET renders it; a client that disconnects and resumes with Last-Event-ID
gets exactly what it missed; a tenant user's stream never carries another
tenant's objects (nor SP users or sessions); bad starts get 400, a stream
over the node's limit 503 + Retry-After, and a logout ends the stream.
(The 410 of an expired revision needs 100k revisions; the unit test
unit.northbound covers it with a short change log.)"""

import http.client
import json
import os
import queue
import sys
import threading
import time
import unittest

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Cluster, assert_problem, run, unique_name, wait_for  # noqa: E402

PASSWORD = "a-long-enough-password"
EVENT_TIMEOUT_S = 20.0


class Stream:
    """An open event stream read by a thread into a queue of events
    ({"id", "event", "data"}); comments are counted, not queued."""

    def __init__(self, url, token, path="/api/v1/events", headers=None):
        addr = url.split("://", 1)[-1]
        host, _, port = addr.rpartition(":")
        self.conn = http.client.HTTPConnection(host, int(port), timeout=30)
        hdrs = {"Authorization": "Bearer " + token, "Accept": "text/event-stream"}
        hdrs.update(headers or {})
        self.conn.request("GET", path, headers=hdrs)
        self.sock = self.conn.sock  # the response takes it over
        self.resp = self.conn.getresponse()
        self.status = self.resp.status
        self.headers = {k.lower(): v for k, v in self.resp.getheaders()}
        self.events = queue.Queue()
        self.comments = 0
        self.closed = threading.Event()
        self.thread = None
        if self.status == 200:
            self.thread = threading.Thread(target=self._read, daemon=True)
            self.thread.start()
        else:
            self.body = self.resp.read()

    def _read(self):
        ev = {}
        try:
            while True:
                line = self.resp.readline()
                if not line:
                    break
                line = line.decode("utf-8").rstrip("\n")
                if line == "":
                    if ev:
                        if "data" in ev:
                            ev["data"] = json.loads(ev["data"])
                        self.events.put(ev)
                    ev = {}
                elif line.startswith(":"):
                    self.comments += 1
                else:
                    name, _, value = line.partition(":")
                    ev[name] = value[1:] if value.startswith(" ") else value
        except (OSError, ValueError, http.client.HTTPException):
            pass
        finally:
            self.closed.set()

    def next(self, timeout=EVENT_TIMEOUT_S):
        return self.events.get(timeout=timeout)

    def collect(self, until, timeout=EVENT_TIMEOUT_S):
        """Events until one satisfies until(ev) (included)."""
        got = []
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError("no matching event within %.0f s; got %r" % (timeout, got))
            try:
                ev = self.events.get(timeout=left)
            except queue.Empty:
                continue
            got.append(ev)
            if until(ev):
                return got

    def close(self):
        try:
            self.sock.shutdown(2)
        except OSError:
            pass
        self.conn.close()
        if self.thread is not None:
            self.thread.join(10)


class EventsTest(unittest.TestCase):
    cluster = None

    @classmethod
    def setUpClass(cls):
        cls.cluster = Cluster(3, name="events", settings={"event_streams_max": 4})
        cls.cluster.__enter__()

    @classmethod
    def tearDownClass(cls):
        failed = getattr(cls, "failed", False)
        cls.cluster.__exit__(AssertionError if failed else None, None, None)

    def run(self, result=None):
        result = super().run(result)
        if result is not None and (result.failures or result.errors):
            type(self).failed = True
        return result

    @property
    def c(self):
        return self.cluster

    def stream(self, node, token=None, **kw):
        s = Stream(self.c.url(node), token or self.c.token, **kw)
        self.addCleanup(s.close)
        return s

    def make_user(self, role, tenant_id):
        body = {"username": unique_name("u"), "password": PASSWORD, "role": role,
                "tenant_id": tenant_id}
        r = self.c.request(1, "POST", "/api/v1/users", body=body)
        self.assertEqual(r.status, 201, r)
        return r.json, self.c.must_login(1, body["username"], PASSWORD)

    def test_changes_through_every_node_arrive_in_order(self):
        s = self.stream(3)
        self.assertEqual(s.status, 200)
        self.assertTrue(s.headers["content-type"].startswith("text/event-stream"))
        start = int(s.headers["x-cairn-revision"])
        written = []  # (revision, event, id, object) in the order the cluster took them
        for i in range(12):
            node = 1 + i % 3
            r = self.c.create_tenant(node, unique_name("ev"))
            self.assertEqual(r.status, 201, r)
            written.append((r.revision, "created", r.json["id"], r.json))
            if i % 4 == 1:
                r2 = self.c.request(node, "PUT", "/api/v1/tenants/" + r.json["id"],
                                    body={"name": r.json["name"], "description": "d%d" % i})
                self.assertEqual(r2.status, 200, r2)
                written.append((r2.revision, "updated", r.json["id"], r2.json))
            if i % 4 == 3:
                r3 = self.c.request(node, "DELETE", "/api/v1/tenants/" + r.json["id"])
                self.assertEqual(r3.status, 204, r3)
                written.append((r3.revision, "deleted", r.json["id"], None))
        last = written[-1][0]
        got = s.collect(lambda ev: int(ev.get("id", 0)) >= last)
        revisions = [ev["data"]["revision"] for ev in got]
        self.assertEqual(revisions, sorted(revisions), "events out of order")
        self.assertGreater(revisions[0], start)
        by_revision = {ev["data"]["revision"]: ev for ev in got}
        for revision, kind, ident, obj in written:
            self.assertIn(revision, by_revision, "revision %d missing" % revision)
            ev = by_revision[revision]
            self.assertEqual(ev["event"], kind)
            self.assertEqual(ev["id"], str(revision))
            self.assertEqual(ev["data"]["kind"], "tenant")
            self.assertEqual(ev["data"]["id"], ident)
            if obj is not None:
                # Exactly the GET's rendering.
                self.assertEqual(ev["data"]["object"], obj)
            else:
                self.assertNotIn("object", ev["data"])
        self.assertEqual(len(by_revision), len(got), "an event was sent twice")
        # No gaps: every successful tenant or user write the audit log has
        # between start and last (also other tests' and the harness's) is an
        # event, and nothing else is.
        audited = set()
        cursor = None
        for _ in range(100):
            r = self.c.get(1, "/api/v1/audit?limit=1000" + ("&cursor=" + cursor if cursor else ""))
            self.assertEqual(r.status, 200, r)
            for rec in r.json["items"]:
                if (rec["result"] == "ok" and rec["kind"] in ("tenant", "user") and
                        start < rec["revision"] <= last):
                    audited.add(rec["revision"])
            cursor = r.json["next_cursor"]
            if cursor is None:
                break
        self.assertEqual(set(by_revision), audited)

    def test_resume_with_last_event_id_loses_nothing(self):
        s = self.stream(2)
        first = self.c.create_tenant(1, unique_name("rs"))
        ev = s.collect(lambda e: e["data"]["id"] == first.json["id"])[-1]
        resume_from = ev["id"]
        s.close()
        missed = [self.c.create_tenant(1 + i % 3, unique_name("rs")) for i in range(6)]
        for r in missed:
            self.assertEqual(r.status, 201, r)
        s2 = self.stream(3, headers={"Last-Event-ID": resume_from})
        self.assertEqual(s2.status, 200)
        got = s2.collect(lambda e: e["data"]["id"] == missed[-1].json["id"])
        ids = [e["data"]["id"] for e in got if e["data"]["kind"] == "tenant"]
        self.assertEqual(ids, [r.json["id"] for r in missed])
        self.assertTrue(all(int(e["id"]) > int(resume_from) for e in got))
        # from_revision works the same way and wins over the header.
        s3 = self.stream(1, path="/api/v1/events?from_revision=%s" % resume_from,
                         headers={"Last-Event-ID": "1"})
        got3 = s3.collect(lambda e: e["data"]["id"] == missed[-1].json["id"])
        self.assertEqual([e["data"]["id"] for e in got3 if e["data"]["kind"] == "tenant"], ids)

    def test_tenant_user_sees_only_its_tenant(self):
        a = self.c.must_create_tenant(1, unique_name("ta"))
        b = self.c.must_create_tenant(1, unique_name("tb"))
        _, a_token = self.make_user("tenant_operator", a["id"])
        s = self.stream(2, token=a_token)
        self.assertEqual(s.status, 200)
        start = int(s.headers["x-cairn-revision"])
        # Changes in both tenants, SP users and sessions.
        r = self.c.request(1, "PUT", "/api/v1/tenants/" + b["id"],
                           body={"name": b["name"], "description": "other"})
        self.assertEqual(r.status, 200, r)
        b_user, _ = self.make_user("tenant_admin", b["id"])
        r = self.c.request(1, "POST", "/api/v1/users",
                           body={"username": unique_name("sp"), "password": PASSWORD,
                                 "role": "sp_operator"})
        self.assertEqual(r.status, 201, r)
        a_user, _ = self.make_user("tenant_admin", a["id"])
        # Sites and devices in both tenants; a draft template (hidden from
        # tenants), then a public one published (offered to every tenant).
        objs = {}
        for name, t in (("a", a), ("b", b)):
            r = self.c.request(2, "POST", "/api/v1/sites",
                               body={"tenant_id": t["id"], "name": unique_name("s"),
                                     "role": "spoke"})
            self.assertEqual(r.status, 201, r)
            objs[name + "_site"] = r.json
            r = self.c.request(3, "POST", "/api/v1/devices",
                               body={"site_id": r.json["id"], "serial": unique_name("SN"),
                                     "family": "srx"})
            self.assertEqual(r.status, 201, r)
            objs[name + "_device"] = r.json
        r = self.c.request(1, "POST", "/api/v1/templates",
                           body={"name": unique_name("draft"), "version": "1.0.0",
                                 "type": "nat"})
        self.assertEqual(r.status, 201, r)
        draft = r.json
        r = self.c.request(1, "POST", "/api/v1/templates",
                           body={"name": unique_name("pub"), "version": "1.0.0", "type": "nat",
                                 "public": True})
        self.assertEqual(r.status, 201, r)
        public = r.json
        r = self.c.request(2, "POST", "/api/v1/templates/%s/publish" % public["id"])
        self.assertEqual(r.status, 200, r)
        r = self.c.request(1, "DELETE", "/api/v1/templates/" + draft["id"])
        self.assertEqual(r.status, 204, r)
        r = self.c.request(3, "PUT", "/api/v1/tenants/" + a["id"],
                           body={"name": a["name"], "description": "mine"})
        self.assertEqual(r.status, 200, r)
        marker = r.revision
        got = s.collect(lambda e: int(e.get("id", 0)) >= marker)
        for e in got:
            d = e["data"]
            self.assertGreater(d["revision"], start)
            self.assertIn(d["kind"], ("tenant", "user", "site", "device", "template"), e)
            if d["kind"] == "tenant":
                self.assertEqual(d["id"], a["id"], e)
            elif d["kind"] == "template":
                self.assertEqual(d["id"], public["id"], e)
                self.assertEqual(d["object"]["state"], "published", e)
            else:
                self.assertEqual(d["object"]["tenant_id"], a["id"], e)
                self.assertNotIn("password_hash", json.dumps(e))
        seen = {e["data"]["id"] for e in got}
        self.assertIn(a_user["id"], seen)
        self.assertIn(a["id"], seen)
        self.assertNotIn(b["id"], seen)
        self.assertNotIn(b_user["id"], seen)
        self.assertIn(objs["a_site"]["id"], seen)
        self.assertIn(objs["a_device"]["id"], seen)
        self.assertNotIn(objs["b_site"]["id"], seen)
        self.assertNotIn(objs["b_device"]["id"], seen)
        self.assertIn(public["id"], seen)
        self.assertNotIn(draft["id"], seen)
        # The device as its GET renders it for this user (no password).
        dev = [e for e in got if e["data"]["id"] == objs["a_device"]["id"]][-1]
        r = self.c.get(2, "/api/v1/devices/" + objs["a_device"]["id"], token=a_token)
        self.assertEqual(r.status, 200, r)
        if r.json["mod_revision"] == dev["data"]["object"]["mod_revision"]:
            self.assertEqual(dev["data"]["object"], r.json)
        else:  # changed since (device status): the event was the older state
            self.assertLess(dev["data"]["object"]["mod_revision"], r.json["mod_revision"])

    def test_bad_starts_and_the_stream_limit(self):
        top = self.c.get(1, "/api/v1/tenants").revision
        for path, headers, field in (
                ("/api/v1/events?from_revision=x", {}, "from_revision"),
                ("/api/v1/events?from_revision=%d" % (top + 1000), {}, "from_revision"),
                ("/api/v1/events", {"Last-Event-ID": "-3"}, "Last-Event-ID"),
                ("/api/v1/events?since=1", {}, "since")):
            r = self.c.request(1, "GET", path, headers=headers)
            assert_problem(self, r, 400, field=field, msg=path)
        r = self.c.request(1, "GET", "/api/v1/events", auth=False)
        assert_problem(self, r, 401)
        # event_streams_max is 4 in this cluster: the 5th stream on one node
        # is refused, the other nodes still take theirs.
        streams = [self.stream(1) for _ in range(4)]
        self.assertEqual([x.status for x in streams], [200] * 4)
        over = self.stream(1)
        self.assertEqual(over.status, 503)
        self.assertIsNotNone(over.headers.get("retry-after"))
        self.assertEqual(self.stream(2).status, 200)
        # A closed stream frees its slot (the server notices at its next
        # write: the heartbeat, or an event).
        for x in streams:
            x.close()
        self.c.create_tenant(1, unique_name("free"))

        def reopened():
            x = Stream(self.c.url(1), self.c.token)
            x.close()
            return x.status == 200
        wait_for(reopened, 40, "a stream slot on node 1 after closing four")
        # Other requests are still served while streams are open.
        self.assertEqual(self.c.get(1, "/api/v1/tenants").status, 200)

    def test_logout_ends_the_stream(self):
        token = self.c.must_login(1, self.c.admin["username"], self.c.admin["password"])
        s = self.stream(2, token=token)
        self.assertEqual(s.status, 200)
        r = self.c.request(3, "POST", "/api/v1/auth/logout", token=token)
        self.assertIn(r.status, (200, 204), r)
        ev = s.collect(lambda e: e.get("event") == "session-ended")
        self.assertEqual(ev[-1]["event"], "session-ended")
        self.assertTrue(s.closed.wait(10), "the stream stayed open after logout")

    def test_user_change_ends_the_stream(self):
        t = self.c.must_create_tenant(1, unique_name("uc"))
        user, token = self.make_user("tenant_admin", t["id"])
        s = self.stream(3, token=token)
        self.assertEqual(s.status, 200)
        # Demoted to operator: what it may see could change, so the stream
        # ends (the client reconnects with its new rights).
        body = {"username": user["username"], "role": "tenant_operator", "tenant_id": t["id"]}
        r = self.c.request(1, "PUT", "/api/v1/users/" + user["id"], body=body)
        self.assertEqual(r.status, 200, r)
        s.collect(lambda e: e.get("event") == "session-ended")
        self.assertTrue(s.closed.wait(10))

    def test_zz_stop_with_open_streams(self):
        # SIGTERM with streams open: they end at once and the node exits 0
        # well within the harness's 10 s (it does not wait for heartbeats or
        # sessions to run out).
        streams = [self.stream(2) for _ in range(3)]
        self.assertEqual([x.status for x in streams], [200] * 3)
        started = time.monotonic()
        self.c.stop(2)
        for x in streams:
            self.assertTrue(x.closed.wait(10), "a stream stayed open after the node stopped")
        self.assertLess(time.monotonic() - started, 10)
        self.c.start(2)
        self.assertEqual(self.stream(2).status, 200)


if __name__ == "__main__":
    run()
