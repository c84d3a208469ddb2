-- wrk script: InfluxDB v1 line-protocol writes, as fast as the target takes them.
--
--   wrk -t2 -c16 -d15s --latency -s benches/load/write.lua http://127.0.0.1:PORT -- [key=value ...]
--
-- Keys (all optional):
--   lines=5000       lines per request body
--   indexes=4        the `index` tag cycles over bench0 .. bench<indexes-1>
--   db=bench         database (the ?db= parameter)
--   path=/write      write endpoint; precision=ns is always sent
--   bodies=4         distinct bodies per wrk thread (each with its own timestamps), sent in turn
--
-- Every line carries an explicit nanosecond timestamp, a measurement from a small set (cpu, mem,
-- disk, net, http), 3-5 tags including `index`, and 3-5 fields: 100-200 bytes, like telegraf's.
-- 100 hosts: about 17,000 distinct series with indexes=4, all created by the first few bodies (a
-- warm-up sends each body once, so the measured run writes into existing series).
-- Bodies are built once per thread at start-up, so the generator costs almost nothing per request.
--
-- At the end prints wrk's usual summary, then one machine-readable line:
--   RESULT lines_per_s=N requests=N ok=N non2xx=N socket_errors=N p50_ms=F p90_ms=F p99_ms=F
--          max_ms=F duration_s=F lines_per_body=N body_bytes=N statuses=204:N,503:N
-- lines_per_s counts lines in 2xx answers only; the latency percentiles are wrk's (all answers).

local threads = {}
local thread_counter = 0

local function parse_args(args)
    local opts = { lines = 5000, indexes = 4, db = "bench", path = "/write", bodies = 4 }
    for _, arg in ipairs(args or {}) do
        local key, value = string.match(arg, "^([%w_]+)=(.*)$")
        if key == nil then
            error("write.lua: arguments are key=value, got '" .. tostring(arg) .. "'")
        end
        if opts[key] == nil then
            error("write.lua: unknown key '" .. key .. "'")
        end
        if type(opts[key]) == "number" then
            local n = tonumber(value)
            if n == nil or n < 1 then
                error("write.lua: " .. key .. " must be a positive number")
            end
            opts[key] = math.floor(n)
        else
            opts[key] = value
        end
    end
    return opts
end

-- A deterministic pseudo-random sequence, so runs send the same bytes.
local function lcg(seed)
    local state = seed % 2147483647
    if state <= 0 then state = state + 2147483646 end
    return function(limit)
        state = (state * 16807) % 2147483647
        return state % limit
    end
end

local function fixed(rand, whole, decimals)
    return string.format("%d.%0" .. decimals .. "d", rand(whole), rand(10 ^ decimals))
end

local function make_line(rand, index, seconds, nanos)
    local host = string.format("host%04d", rand(100))
    local ts = string.format("%d%09d", seconds, nanos)
    local kind = rand(5)
    if kind == 0 then
        return string.format(
            "cpu,host=%s,index=%s,region=eu-west-%d,cpu=cpu%d usage_user=%s,usage_system=%s,usage_idle=%s,usage_iowait=%s %s",
            host, index, rand(3), rand(4), fixed(rand, 100, 3), fixed(rand, 100, 3),
            fixed(rand, 100, 3), fixed(rand, 10, 3), ts)
    elseif kind == 1 then
        return string.format(
            "mem,host=%s,index=%s,region=eu-west-%d total=%di,used=%di,free=%di,used_percent=%s %s",
            host, index, rand(3), 17179869184, rand(17179869184), rand(8589934592),
            fixed(rand, 100, 4), ts)
    elseif kind == 2 then
        return string.format(
            "disk,host=%s,index=%s,device=nvme%dn1,fstype=ext4,path=/data%d used=%di,free=%di,inodes_used=%di %s",
            host, index, rand(4), rand(4), rand(1000000000000), rand(1000000000000), rand(100000000), ts)
    elseif kind == 3 then
        return string.format(
            "net,host=%s,index=%s,interface=eth%d bytes_recv=%di,bytes_sent=%di,packets_recv=%di,packets_sent=%di,err_in=%di %s",
            host, index, rand(4), rand(2000000000), rand(2000000000), rand(20000000), rand(20000000), rand(10), ts)
    else
        return string.format(
            "http_requests,host=%s,index=%s,method=%s,status=%d count=%di,duration_ms=%s,path=\"/api/v%d/items\" %s",
            host, index, (rand(4) == 0) and "POST" or "GET", 200 + rand(4) * 100, rand(100000),
            fixed(rand, 1000, 2), rand(3), ts)
    end
end

local function make_body(opts, thread_id, variant)
    local rand = lcg(thread_id * 7919 + variant * 104729 + 1)
    local parts = {}
    -- each (thread, variant) gets its own hour, so bodies never repeat a timestamp
    local seconds = 1700000000 + (thread_id * 64 + variant) * 3600
    for i = 1, opts.lines do
        local index = "bench" .. ((i - 1) % opts.indexes)
        parts[i] = make_line(rand, index, seconds + math.floor(i / 1000), (i % 1000) * 1000000)
    end
    parts[#parts + 1] = ""
    return table.concat(parts, "\n")
end

function setup(thread)
    thread_counter = thread_counter + 1
    thread:set("thread_id", thread_counter)
    table.insert(threads, thread)
end

local requests = {}
local next_request = 1

function init(args)
    opts = parse_args(args)
    lines_per_body = opts.lines
    statuses = {}
    ok = 0
    local tid = thread_id or 1
    local path = opts.path .. "?db=" .. opts.db .. "&precision=ns"
    for variant = 1, opts.bodies do
        local body = make_body(opts, tid, variant)
        body_bytes = #body
        requests[variant] = wrk.format("POST", path, { ["Content-Type"] = "text/plain; charset=utf-8" }, body)
    end
end

function request()
    local r = requests[next_request]
    next_request = next_request % #requests + 1
    return r
end

function response(status, headers, body)
    if status >= 200 and status < 300 then
        ok = ok + 1
    end
    statuses[status] = (statuses[status] or 0) + 1
end

function done(summary, latency, requests_stats)
    local total_ok, lines, bytes = 0, 0, 0
    local merged = {}
    for _, thread in ipairs(threads) do
        total_ok = total_ok + (thread:get("ok") or 0)
        lines = thread:get("lines_per_body") or lines
        bytes = thread:get("body_bytes") or bytes
        local per_thread = thread:get("statuses") or {}
        for status, count in pairs(per_thread) do
            merged[status] = (merged[status] or 0) + count
        end
    end
    local codes = {}
    for status, _ in pairs(merged) do table.insert(codes, status) end
    table.sort(codes)
    local status_parts = {}
    for _, status in ipairs(codes) do
        table.insert(status_parts, status .. ":" .. merged[status])
    end
    local seconds = summary.duration / 1e6
    local errors = summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout
    local function ms(us) return us / 1000.0 end
    io.write(string.format(
        "RESULT lines_per_s=%.0f requests=%d ok=%d non2xx=%d socket_errors=%d p50_ms=%.2f p90_ms=%.2f p99_ms=%.2f max_ms=%.2f duration_s=%.2f lines_per_body=%d body_bytes=%d statuses=%s\n",
        total_ok * lines / seconds, summary.requests, total_ok, summary.requests - total_ok, errors,
        ms(latency:percentile(50)), ms(latency:percentile(90)), ms(latency:percentile(99)), ms(latency.max),
        seconds, lines, bytes, table.concat(status_parts, ",")))
end
