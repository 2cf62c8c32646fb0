//! The native ceiling: `ceiling [ADDR]` (default 127.0.0.1:18081).
//! See `edge_bench::servers::Ceiling` for what it answers.

use std::sync::Arc;

use edge_bench::servers::Ceiling;

fn main() -> anyhow::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:18081".into())
        .parse()?;
    let ceiling = Arc::new(Ceiling::default());
    edge_bench::serve::run(
        "ceiling",
        addr,
        Arc::new(move |parts| ceiling.respond(parts.uri.query()).map(Into::into)),
    )
}
