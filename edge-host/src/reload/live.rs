//! A component's context as the latest reload left it.
//!
//! A reload never edits a context in place: it builds a new one and swaps
//! it in. Whoever starts work takes the context current at that moment and
//! keeps it to the end: a WASI 0.2 request its fresh instance's, a WASI 0.3
//! instance the one it was made with, a lane's native node the one it was
//! built from. So a request in flight finishes with the values it started
//! with, and new work sees the new ones. Work made from an older context
//! asks [`LiveContext::is_current`] before it takes more: a reused
//! instance then takes no new request and retires once its own are done,
//! and a lane builds its native node again.

use std::sync::Arc;

use arc_swap::ArcSwap;
use tokio::sync::Notify;
use tokio::sync::futures::OwnedNotified;

use crate::instance::ComponentContext;

/// One component's context, swapped whole by a reload.
pub struct LiveContext {
    /// The component id from the manifest (a reload never changes it).
    pub id: Arc<str>,
    current: ArcSwap<ComponentContext>,
    /// Wakes idle instances when a reload replaces the context, so they
    /// retire at once instead of holding their pool slot and memory until
    /// their idle timeout.
    replaced: Arc<Notify>,
}

impl LiveContext {
    /// The context a component starts with.
    pub fn new(context: ComponentContext) -> Self {
        LiveContext {
            id: context.id.clone(),
            current: ArcSwap::from_pointee(context),
            replaced: Arc::new(Notify::new()),
        }
    }

    /// The context new work starts with.
    pub fn current(&self) -> Arc<ComponentContext> {
        self.current.load_full()
    }

    /// Whether `context` is still the current one (no reload has replaced
    /// it since it was taken).
    pub fn is_current(&self, context: &Arc<ComponentContext>) -> bool {
        Arc::ptr_eq(&self.current.load(), context)
    }

    /// Makes `context` the one new work starts with.
    pub(crate) fn replace(&self, context: ComponentContext) {
        self.current.store(Arc::new(context));
        self.replaced.notify_waiters();
    }

    /// Resolves at the next [`LiveContext::replace`] (once polled or
    /// enabled before it).
    pub(crate) fn replaced(&self) -> OwnedNotified {
        self.replaced.clone().notified_owned()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::future::Future;

    use super::*;
    use crate::files::FileMounts;
    use crate::key_value::ComponentStores;
    use crate::outbound_http::{AllowedHosts, OriginPool};
    use crate::variables::ComponentVariables;

    fn context(id: &str) -> ComponentContext {
        ComponentContext {
            id: Arc::from(id),
            variables: ComponentVariables::default(),
            key_value: ComponentStores::default(),
            allowed_hosts: Arc::new(AllowedHosts::default()),
            origin_pool: OriginPool::default(),
            files: FileMounts::default(),
            environment: BTreeMap::new(),
        }
    }

    #[test]
    fn work_taken_before_a_swap_keeps_its_context_and_knows_it_is_old() {
        let live = LiveContext::new(context("edge"));
        let taken = live.current();
        assert!(live.is_current(&taken));
        live.replace(context("edge"));
        assert!(
            !live.is_current(&taken),
            "the old context is no longer current"
        );
        assert!(live.is_current(&live.current()));
        assert_eq!(
            &*taken.id, "edge",
            "the old one is still whole for its work"
        );
    }

    #[test]
    fn an_idle_instance_waiting_for_a_replace_is_woken_by_it() {
        let live = LiveContext::new(context("edge"));
        let mut replaced = std::pin::pin!(live.replaced());
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        assert!(replaced.as_mut().poll(&mut cx).is_pending(), "armed");
        live.replace(context("edge"));
        assert!(replaced.as_mut().poll(&mut cx).is_ready());
    }
}
