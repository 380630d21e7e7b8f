//! `cargo xtask`: workflows around kiln (bringup, test, bench).

fn main() -> anyhow::Result<()> {
    anyhow::bail!("not built yet")
}
