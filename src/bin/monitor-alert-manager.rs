//! `monitor-alert-manager`: alert suppression and delivery. Thin main; the work is in
//! `monitor::alertmanager`.

fn main() -> anyhow::Result<()> {
    anyhow::bail!("monitor-alert-manager: not implemented yet (issue 6)")
}
