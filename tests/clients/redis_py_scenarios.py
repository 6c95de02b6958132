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

# register_script: a rate limiter as libraries write it (EVALSHA, falling
# back to EVAL on NOSCRIPT), its keys on every shard, after SCRIPT FLUSH too.
limiter = r.register_script(
    "local n = redis.call('INCR', KEYS[1]) "
    "if n == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end "
    "return {n, redis.call('PTTL', KEYS[1]) > 0 and 1 or 0}"
)
for key in ["rl:a", "rl:b", "rl:c", "rl:d"]:
    for i in range(1, 4):
        n, has_ttl = limiter(keys=[key], args=[60000])
        assert (n, has_ttl) == (i, 1), (key, n, has_ttl)
r.script_flush()
assert limiter(keys=["rl:a"], args=[60000]) == [4, 1]
# A script building its key names from ARGV, as queue libraries do.
mover = r.register_script(
    "local v = redis.call('RPOP', ARGV[1] .. ':wait') "
    "if not v then return false end "
    "redis.call('LPUSH', ARGV[1] .. ':active', v) "
    "redis.call('HSET', ARGV[1] .. ':job:' .. v, 'state', 'active') "
    "return v"
)
r.rpush("q:wait", "j1", "j2")
assert mover(keys=[], args=["q"]) == "j2"
assert mover(keys=[], args=["q"]) == "j1"
assert mover(keys=[], args=["q"]) is None
assert r.lrange("q:active", 0, -1) == ["j1", "j2"]
assert r.hget("q:job:j1", "state") == "active"
print("register_script: ok")

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
