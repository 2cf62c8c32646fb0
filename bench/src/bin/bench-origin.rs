//! The benchmark's origin: `bench-origin [ADDR]` (default 127.0.0.1:18080).
//! See `edge_bench::servers::Origin` for what it answers.

use std::sync::Arc;

use edge_bench::servers::Origin;

fn main() -> anyhow::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:18080".into())
        .parse()?;
    let origin = Arc::new(Origin::default());
    edge_bench::serve::run(
        "bench-origin",
        addr,
        Arc::new(move |parts| origin.handle(parts)),
    )
}
