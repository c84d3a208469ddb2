"""Writes through monitor-api with PyPI's `influxdb` (the InfluxDB 1.x Python client).

argv: proxy port, database, password (a proxy token, sent as Basic auth), base time in seconds,
the port of an influxd to write the "tricky" point to directly as well (database "direct"), so
the test can compare what the proxy delivered with what influxd stores from this client.
Index c1 gets 10 cpu points (JSON protocol), 10 mem lines (line protocol) and 4 disk points
(gzip, retention policy autogen); index c2 gets 5 cpu points and 5 mem lines; 3 "stamp" points
without a time (the proxy stamps them) go to c1 with the client's default precision.
Prints the ping answer (the X-Influxdb-Version the proxy reports).
"""
import sys

from influxdb import InfluxDBClient

port, database, password, base = int(sys.argv[1]), sys.argv[2], sys.argv[3], int(sys.argv[4])
client = InfluxDBClient(host="127.0.0.1", port=port, username="py", password=password,
                        database=database, timeout=30, retries=1)
version = client.ping()
assert version, "ping returned no X-Influxdb-Version"


def cpu(index, count):
    return [{"measurement": "cpu",
             "tags": {"index": index, "host": "h%d" % i},
             "fields": {"usage": i * 1.5, "n": i},
             "time": base - i} for i in range(count)]


def mem(index, count):
    return ["mem,index=%s,host=h%d free=%di,note=\"x y\" %d" % (index, i, i * 10, base - i)
            for i in range(count)]


assert client.write_points(cpu("c1", 10) + cpu("c2", 5), time_precision="s", consistency="all")
assert client.write_points(mem("c1", 10) + mem("c2", 5), time_precision="s", protocol="line")

zipped = InfluxDBClient(host="127.0.0.1", port=port, username="py", password=password,
                        database=database, gzip=True, timeout=30, retries=1)
disk = [{"measurement": "disk", "tags": {"index": "c1"}, "fields": {"used": 0.25 * i},
         "time": (base - i) * 1000} for i in range(4)]
assert zipped.write_points(disk, time_precision="ms", retention_policy="autogen")
unstamped = [{"measurement": "stamp", "tags": {"index": "c1", "k": str(i)}, "fields": {"v": i}}
             for i in range(3)]
assert client.write_points(unstamped)
print(version)

# characters every line-protocol writer must escape, as this client escapes them
tricky = [{"measurement": "we ird,meas", "tags": {"index": "c1", "path": "C:\\dir with space,comma=eq"},
           "fields": {"msg": 'say "hi" \\ back\\slash, ünï=ok', "n": -7}, "time": base}]
assert client.write_points(tricky, time_precision="s")
direct = InfluxDBClient(host="127.0.0.1", port=int(sys.argv[5]), database="direct", timeout=30)
direct.create_database("direct")
assert direct.write_points(tricky, time_precision="s")
