//! `monitorctl`: operator CLI. Thin main.

fn main() -> anyhow::Result<()> {
    Ok(())
}
