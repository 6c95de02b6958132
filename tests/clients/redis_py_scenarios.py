"""What applications do with redis-py (Debian's python3-redis), run against
one server given by port: a transactional pipeline, a WATCH retry loop
under contention, a pub/sub listener thread. Exits non-zero on the first
difference from what Redis does; prints one line per scenario."""

import sys
import threading
import time

import redis

port = int(sys.argv[1])
r = redis.Redis(host="127.0.0.1", port=port, decode_responses=True)
r.flushall()

# pipeline() is MULTI/EXEC by default: set + expireat, like a session store.
at = int(time.time()) + 100
with r.pipeline() as p:
    p.set("session:1", "data").expireat("session:1", at).get("session:1").ttl("session:1")
    res = p.execute()
assert res[0] is True and res[1] is True and res[2] == "data", res
assert 98 <= res[3] <= 100, res
# A failing command inside the transaction raises, the others still ran.
with r.pipeline() as p:
    p.set("k", "v").lpush("k", "x").set("k2", "v2")
    try:
        p.execute()
        raise AssertionError("expected a WRONGTYPE error")
    except redis.ResponseError as e:
        assert "WRONGTYPE" in str(e), e
assert r.get("k2") == "v2"
print("pipeline: ok")

# The WATCH retry loop (redis-py's transaction helper), contended by threads
# whose connections land on different shards.
r.set("counter", 0)
r.set("{counter}shadow", 0)
N, T = 100, 4


def incr_both(pipe):
    v = int(pipe.get("counter"))
    pipe.multi()
    pipe.set("counter", v + 1)
    pipe.set("{counter}shadow", v + 1)


def worker():
    c = redis.Redis(host="127.0.0.1", port=port, decode_responses=True)
    for _ in range(N):
        c.transaction(incr_both, "counter")


ts = [threading.Thread(target=worker) for _ in range(T)]
for t in ts:
    t.start()
for t in ts:
    t.join()
assert r.get("counter") == str(N * T), r.get("counter")
assert r.get("{counter}shadow") == str(N * T)
print("watch retry loop: ok")

# A pub/sub listener thread receives every message, in order.
ps = r.pubsub()
ps.subscribe("orders")
got = []
ready = threading.Event()


def listen():
    for m in ps.listen():
        if m["type"] == "subscribe":
            ready.set()
        elif m["type"] == "message":
            got.append(m["data"])
            if m["data"] == "stop":
                return


lt = threading.Thread(target=listen)
lt.start()
assert ready.wait(5)
pub = redis.Redis(host="127.0.0.1", port=port, decode_responses=True)
for i in range(200):
    assert pub.publish("orders", "o%d" % i) == 1
pub.publish("orders", "stop")
lt.join(10)
assert not lt.is_alive()
assert got == ["o%d" % i for i in range(200)] + ["stop"], got[:5]
ps.close()
print("pubsub listener: ok")
