"""Writes through monitor-api's /api/v2/write with PyPI's `influxdb-client` (InfluxDB 2.x client).

argv: proxy url, token, database, base time in seconds.
Point objects at precision s into bucket "<db>/autogen": cpu, 10 for index c1, 5 for c2.
Line strings at precision ns into bucket "<db>/autogen" (gzip): mem, 10 for c1, 5 for c2, at
base*1e9 + i*1001 ns (sub-second digits must survive).
The default (batching) write API: net, 3 points for c1 at precision ms into bucket "<db>" (the
default retention policy), flushed on close.
Also checks health() reports "pass".
"""
import sys

from influxdb_client import InfluxDBClient, Point, WritePrecision
from influxdb_client.client.write_api import SYNCHRONOUS

url, token, database, base = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])

with InfluxDBClient(url=url, token=token, org="-", timeout=30_000) as client:
    assert client.ping(), "ping failed"
    health = client.health()
    assert health.status == "pass", "health: %r" % (health,)
    write = client.write_api(write_options=SYNCHRONOUS)
    points = [Point("cpu").tag("index", index).tag("host", "h%d" % i)
              .field("usage", i * 1.5).field("n", i).time(base - i, WritePrecision.S)
              for index, count in (("c1", 10), ("c2", 5)) for i in range(count)]
    write.write(bucket=database + "/autogen", record=points, write_precision=WritePrecision.S)

with InfluxDBClient(url=url, token=token, org="-", enable_gzip=True, timeout=30_000) as client:
    write = client.write_api(write_options=SYNCHRONOUS)
    lines = ["mem,index=%s,host=h%d free=%di %d" % (index, i, i * 10, base * 10**9 + i * 1001)
             for index, count in (("c1", 10), ("c2", 5)) for i in range(count)]
    write.write(bucket=database + "/autogen", record=lines, write_precision=WritePrecision.NS)
with InfluxDBClient(url=url, token=token, org="-", timeout=30_000) as client:
    with client.write_api() as batching:
        batching.write(bucket=database, write_precision=WritePrecision.MS,
                       record=[Point("net").tag("index", "c1").field("bytes", 100 + i)
                               .time(base * 1000 + i, WritePrecision.MS) for i in range(3)])
with InfluxDBClient(url=url, token=token, org="-", timeout=30_000) as client:
    # characters every line-protocol writer must escape, as this client escapes them
    tricky = (Point("we ird,meas").tag("index", "c2").tag("path", "C:\\dir with space,comma=eq")
              .field("msg", 'say "hi" \\ back\\slash, ünï=ok').field("n", -7)
              .time(base, WritePrecision.S))
    client.write_api(write_options=SYNCHRONOUS).write(bucket=database, record=tricky,
                                                      write_precision=WritePrecision.S)
print("ok")
