//! InfluxDB backend clients (v1 and v2 dialects), health and circuit breaking. Not implemented
//! yet (issue 3); it must never re-serialise line protocol: it forwards the bytes it is given.
