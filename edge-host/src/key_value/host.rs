//! The host side of `fermyon:spin/key-value@2.0.0`, generated from Spin's
//! own WIT (`edge-host/wit/`), over one instance's [`KeyValueState`].
//!
//! The permission is the manifest's: an instance opens only the stores in
//! its component's `key_value_stores`.

use std::sync::Arc;

use wasmtime::component::{HasSelf, Linker, Resource, ResourceTable};

use super::{ComponentStores, StoreBackend, StoreError};

mod bindings {
    wasmtime::component::bindgen!({
        path: "wit",
        world: "edge-host:host/key-value-imports",
        imports: { default: async | trappable },
        with: {
            "fermyon:spin/key-value.store": super::OpenStore,
        },
    });
}

use bindings::fermyon::spin::key_value;

/// An open key-value store, as held in the instance's table of stores.
pub struct OpenStore {
    backend: Arc<dyn StoreBackend>,
}

/// One instance's key-value state: the stores its component may open and
/// the ones it has open.
pub struct KeyValueState {
    allowed: ComponentStores,
    open: ResourceTable,
}

impl KeyValueState {
    /// State for a fresh instance of a component allowed `allowed`.
    pub fn new(allowed: ComponentStores) -> Self {
        KeyValueState {
            allowed,
            open: ResourceTable::new(),
        }
    }

    fn backend(&self, store: &Resource<OpenStore>) -> wasmtime::Result<Arc<dyn StoreBackend>> {
        Ok(self.open.get(store)?.backend.clone())
    }
}

/// Adds `fermyon:spin/key-value` to `linker`; `state` finds an instance's
/// [`KeyValueState`] in its store data.
pub fn add_to_linker<T: Send + 'static>(
    linker: &mut Linker<T>,
    state: fn(&mut T) -> &mut KeyValueState,
) -> anyhow::Result<()> {
    bindings::KeyValueImports::add_to_linker::<_, HasSelf<_>>(linker, state)?;
    Ok(())
}

fn to_wit(error: StoreError) -> key_value::Error {
    match error {
        StoreError::TableFull(_) => key_value::Error::StoreTableFull,
        StoreError::Backend(message) => key_value::Error::Other(message),
    }
}

impl key_value::Host for KeyValueState {}

impl key_value::HostStore for KeyValueState {
    async fn open(
        &mut self,
        label: String,
    ) -> wasmtime::Result<Result<Resource<OpenStore>, key_value::Error>> {
        let Some(backend) = self.allowed.get(&label) else {
            // Spin distinguishes a store the component may not use from one
            // that does not exist; every allowed store exists here (checked
            // at start-up), so any other label is a permission failure.
            return Ok(Err(key_value::Error::AccessDenied));
        };
        let store = OpenStore {
            backend: backend.clone(),
        };
        Ok(Ok(self.open.push(store)?))
    }

    async fn get(
        &mut self,
        store: Resource<OpenStore>,
        key: String,
    ) -> wasmtime::Result<Result<Option<Vec<u8>>, key_value::Error>> {
        Ok(self.backend(&store)?.get(&key).await.map_err(to_wit))
    }

    async fn set(
        &mut self,
        store: Resource<OpenStore>,
        key: String,
        value: Vec<u8>,
    ) -> wasmtime::Result<Result<(), key_value::Error>> {
        Ok(self.backend(&store)?.set(&key, value).await.map_err(to_wit))
    }

    async fn delete(
        &mut self,
        store: Resource<OpenStore>,
        key: String,
    ) -> wasmtime::Result<Result<(), key_value::Error>> {
        Ok(self.backend(&store)?.delete(&key).await.map_err(to_wit))
    }

    async fn exists(
        &mut self,
        store: Resource<OpenStore>,
        key: String,
    ) -> wasmtime::Result<Result<bool, key_value::Error>> {
        Ok(self.backend(&store)?.exists(&key).await.map_err(to_wit))
    }

    async fn get_keys(
        &mut self,
        store: Resource<OpenStore>,
    ) -> wasmtime::Result<Result<Vec<String>, key_value::Error>> {
        Ok(self.backend(&store)?.get_keys().await.map_err(to_wit))
    }

    async fn drop(&mut self, store: Resource<OpenStore>) -> wasmtime::Result<()> {
        self.open.delete(store)?;
        Ok(())
    }
}
