//! `monitor-api`: the sharding line-protocol proxy. Thin main; the work is in `monitor::proxy`.

fn main() -> anyhow::Result<()> {
    anyhow::bail!("monitor-api: the write path is not implemented yet (issue 3)")
}
