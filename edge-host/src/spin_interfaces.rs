//! Host side of `fermyon:spin/key-value@2.0.0` and `fermyon:spin/variables@2.0.0`.
//!
//! Bindings are generated from Spin's own WIT files (`edge-host/wit/`).
//! Permissions are the manifest's: a component opens only the stores in its
//! `key_value_stores` and reads only the variables it declares.

use std::sync::Arc;

use wasmtime::component::{HasSelf, Linker, Resource};

use crate::key_value::{StoreBackend, StoreError};
use crate::state::RequestState;

mod bindings {
    wasmtime::component::bindgen!({
        path: "wit",
        world: "edge-host:host/spin-imports",
        imports: { default: async | trappable },
        with: {
            "fermyon:spin/key-value.store": super::OpenStore,
        },
    });
}

use bindings::fermyon::spin::{key_value, variables};

/// An open key-value store, as held in the guest's resource table.
pub struct OpenStore {
    backend: Arc<dyn StoreBackend>,
}

/// Adds both Spin interfaces to the linker.
pub fn add_to_linker(linker: &mut Linker<RequestState>) -> anyhow::Result<()> {
    bindings::SpinImports::add_to_linker::<_, HasSelf<_>>(linker, |state| state)?;
    Ok(())
}

fn to_wit(error: StoreError) -> key_value::Error {
    match error {
        StoreError::TableFull(_) => key_value::Error::StoreTableFull,
        StoreError::Backend(message) => key_value::Error::Other(message),
    }
}

impl key_value::Host for RequestState {}

impl key_value::HostStore for RequestState {
    async fn open(
        &mut self,
        label: String,
    ) -> wasmtime::Result<Result<Resource<OpenStore>, key_value::Error>> {
        let Some(backend) = self.component.stores.get(&label) else {
            // Spin distinguishes a store the component may not use from one
            // that does not exist; every allowed store exists here (checked
            // at start-up), so any other label is a permission failure.
            return Ok(Err(key_value::Error::AccessDenied));
        };
        let store = OpenStore {
            backend: backend.clone(),
        };
        Ok(Ok(self.table.push(store)?))
    }

    async fn get(
        &mut self,
        store: Resource<OpenStore>,
        key: String,
    ) -> wasmtime::Result<Result<Option<Vec<u8>>, key_value::Error>> {
        let backend = self.table.get(&store)?.backend.clone();
        Ok(backend.get(&key).await.map_err(to_wit))
    }

    async fn set(
        &mut self,
        store: Resource<OpenStore>,
        key: String,
        value: Vec<u8>,
    ) -> wasmtime::Result<Result<(), key_value::Error>> {
        let backend = self.table.get(&store)?.backend.clone();
        Ok(backend.set(&key, value).await.map_err(to_wit))
    }

    async fn delete(
        &mut self,
        store: Resource<OpenStore>,
        key: String,
    ) -> wasmtime::Result<Result<(), key_value::Error>> {
        let backend = self.table.get(&store)?.backend.clone();
        Ok(backend.delete(&key).await.map_err(to_wit))
    }

    async fn exists(
        &mut self,
        store: Resource<OpenStore>,
        key: String,
    ) -> wasmtime::Result<Result<bool, key_value::Error>> {
        let backend = self.table.get(&store)?.backend.clone();
        Ok(backend.exists(&key).await.map_err(to_wit))
    }

    async fn get_keys(
        &mut self,
        store: Resource<OpenStore>,
    ) -> wasmtime::Result<Result<Vec<String>, key_value::Error>> {
        let backend = self.table.get(&store)?.backend.clone();
        Ok(backend.get_keys().await.map_err(to_wit))
    }

    async fn drop(&mut self, store: Resource<OpenStore>) -> wasmtime::Result<()> {
        self.table.delete(store)?;
        Ok(())
    }
}

impl variables::Host for RequestState {
    async fn get(&mut self, name: String) -> wasmtime::Result<Result<String, variables::Error>> {
        if crate::manifest::check_variable_name(&name).is_err() {
            return Ok(Err(variables::Error::InvalidName(name)));
        }
        Ok(self
            .component
            .variables
            .get(&name)
            .cloned()
            .ok_or(variables::Error::Undefined(name)))
    }
}
