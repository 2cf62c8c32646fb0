//! Many edge nodes sharing purges through a real `redis-server` each test
//! starts: a binary of its own (it links wasmtime once), so that the tests
//! needing Redis run alone with `cargo test -p edge-tests --test cluster`.
//!
//! | module | what it proves |
//! |---|---|
//! | `many_nodes` | purges honoured by every node, Redis down or frozen, a shield store |

mod many_nodes;
