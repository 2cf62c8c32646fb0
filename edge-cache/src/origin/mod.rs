//! The origin as the flow sees it: each one behind its circuit breaker and
//! concurrency cap (`guard`, `breaker`, `slots`), the primary failing over
//! to a backup (`failover`), and what the client is told when neither
//! answers (`failure`).

pub(crate) mod breaker;
pub(crate) mod failover;
pub(crate) mod failure;
pub(crate) mod guard;
pub(crate) mod slots;
