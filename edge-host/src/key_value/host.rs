//! The host side of Spin key-value, generated from Spin's own WIT
//! (`edge-host/wit/`), over one instance's [`KeyValueState`], in both
//! generations: `fermyon:spin/key-value@2.0.0` (WASI 0.2 components,
//! synchronous to the guest) and `spin:key-value/key-value@3.0.0` (WASI 0.3
//! components, `async` functions).
//!
//! The 3.0.0 functions take the [`Accessor`] form: they hold the store only
//! to look up the open store's backend, and await the backend without it, so
//! the other requests an instance serves at the same time go on meanwhile.
//!
//! The permission is the manifest's: an instance opens only the stores in
//! its component's `key_value_stores`.

use std::sync::Arc;

use wasmtime::component::{
    Accessor, FutureReader, HasData, HasSelf, Linker, Resource, ResourceTable, StreamReader,
};

use super::leases::{HeldLeases, LeftLeases};
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

mod bindings_v3 {
    wasmtime::component::bindgen!({
        path: "wit",
        world: "edge-host:host/key-value-v3-imports",
        imports: { default: async | store | trappable },
        with: {
            "spin:key-value/key-value.store": super::OpenStore,
        },
    });
}

use bindings_v3::spin::key_value::key_value as key_value_v3;

/// An open key-value store, as held in the instance's table of stores.
pub struct OpenStore {
    backend: Arc<dyn StoreBackend>,
}

/// One instance's key-value state: the stores its component may open, the
/// ones it has open, and the fill leases it holds (released if it is
/// dropped holding them: see [`super::leases`]).
pub struct KeyValueState {
    allowed: ComponentStores,
    open: ResourceTable,
    leases: HeldLeases,
}

impl KeyValueState {
    /// State for a fresh instance of a component allowed `allowed`.
    pub fn new(allowed: ComponentStores) -> Self {
        KeyValueState {
            allowed,
            open: ResourceTable::new(),
            leases: HeldLeases::default(),
        }
    }

    /// The fill leases the instance still holds, taken from it: a failed
    /// instance's, for the executor to release before it answers.
    pub fn left_leases(&mut self) -> LeftLeases {
        self.leases.take()
    }

    fn backend(&self, store: &Resource<OpenStore>) -> wasmtime::Result<Arc<dyn StoreBackend>> {
        Ok(self.open.get(store)?.backend.clone())
    }
}

/// Adds `fermyon:spin/key-value@2.0.0` and `spin:key-value/key-value@3.0.0`
/// to `linker`; `state` finds an instance's [`KeyValueState`] in its store
/// data.
pub fn add_to_linker<T: Send + 'static>(
    linker: &mut Linker<T>,
    state: fn(&mut T) -> &mut KeyValueState,
) -> anyhow::Result<()> {
    bindings::KeyValueImports::add_to_linker::<_, HasSelf<_>>(linker, state)?;
    bindings_v3::KeyValueV3Imports::add_to_linker::<_, KeyValueState>(linker, state)?;
    Ok(())
}

fn to_wit(error: StoreError) -> key_value::Error {
    match error {
        StoreError::TableFull(_) => key_value::Error::StoreTableFull,
        StoreError::Backend(message) => key_value::Error::Other(message),
    }
}

fn to_wit_v3(error: StoreError) -> key_value_v3::Error {
    match error {
        StoreError::TableFull(_) => key_value_v3::Error::StoreTableFull,
        StoreError::Backend(message) => key_value_v3::Error::Other(message),
    }
}

impl KeyValueState {
    /// The store the component may open as `label`, as a table entry.
    fn open_label(&mut self, label: &str) -> wasmtime::Result<Option<Resource<OpenStore>>> {
        let Some(backend) = self.allowed.get(label) else {
            return Ok(None);
        };
        let store = OpenStore {
            backend: backend.clone(),
        };
        Ok(Some(self.open.push(store)?))
    }
}

impl key_value::Host for KeyValueState {}

impl key_value::HostStore for KeyValueState {
    async fn open(
        &mut self,
        label: String,
    ) -> wasmtime::Result<Result<Resource<OpenStore>, key_value::Error>> {
        // Spin distinguishes a store the component may not use from one
        // that does not exist; every allowed store exists here (checked at
        // start-up), so any other label is a permission failure.
        Ok(self
            .open_label(&label)?
            .ok_or(key_value::Error::AccessDenied))
    }

    async fn get(
        &mut self,
        store: Resource<OpenStore>,
        key: String,
    ) -> wasmtime::Result<Result<Option<Vec<u8>>, key_value::Error>> {
        let backend = self.backend(&store)?;
        if key == purge_wire::STORE_CAPACITY_KEY {
            return Ok(Ok(capacity_value(backend.as_ref())));
        }
        Ok(backend.get(&key).await.map_err(to_wit))
    }

    async fn set(
        &mut self,
        store: Resource<OpenStore>,
        key: String,
        value: Vec<u8>,
    ) -> wasmtime::Result<Result<(), key_value::Error>> {
        let backend = self.backend(&store)?;
        let lease = purge_wire::is_fill_lease_key(&key).then(|| value.clone());
        let set = backend.set(&key, value).await;
        if let (Ok(()), Some(value)) = (&set, lease) {
            self.leases.set(&backend, &key, value);
        }
        Ok(set.map_err(to_wit))
    }

    async fn delete(
        &mut self,
        store: Resource<OpenStore>,
        key: String,
    ) -> wasmtime::Result<Result<(), key_value::Error>> {
        let backend = self.backend(&store)?;
        let deleted = backend.delete(&key).await;
        if deleted.is_ok() {
            self.leases.deleted(&backend, &key);
        }
        Ok(deleted.map_err(to_wit))
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

/// The 3.0.0 interface reaches an instance's [`KeyValueState`] through the
/// store's accessor.
impl HasData for KeyValueState {
    type Data<'a> = &'a mut KeyValueState;
}

impl key_value_v3::Host for KeyValueState {}

impl key_value_v3::HostStore for KeyValueState {}

/// The backend of an open store, looked up with the store held only for
/// that.
fn backend_v3<T>(
    accessor: &Accessor<T, KeyValueState>,
    store: &Resource<OpenStore>,
) -> wasmtime::Result<Arc<dyn StoreBackend>> {
    accessor.with(|mut access| access.get().backend(store))
}

impl<T> key_value_v3::HostStoreWithStore<T> for KeyValueState {
    async fn open(
        accessor: &Accessor<T, Self>,
        label: String,
    ) -> wasmtime::Result<Result<Resource<OpenStore>, key_value_v3::Error>> {
        // As in 2.0.0: every allowed store exists, so any other label is a
        // permission failure.
        accessor.with(|mut access| {
            Ok(access
                .get()
                .open_label(&label)?
                .ok_or(key_value_v3::Error::AccessDenied))
        })
    }

    async fn get(
        accessor: &Accessor<T, Self>,
        store: Resource<OpenStore>,
        key: String,
    ) -> wasmtime::Result<Result<Option<Vec<u8>>, key_value_v3::Error>> {
        let backend = backend_v3(accessor, &store)?;
        if key == purge_wire::STORE_CAPACITY_KEY {
            return Ok(Ok(capacity_value(backend.as_ref())));
        }
        Ok(backend.get(&key).await.map_err(to_wit_v3))
    }

    async fn set(
        accessor: &Accessor<T, Self>,
        store: Resource<OpenStore>,
        key: String,
        value: Vec<u8>,
    ) -> wasmtime::Result<Result<(), key_value_v3::Error>> {
        let backend = backend_v3(accessor, &store)?;
        let lease = purge_wire::is_fill_lease_key(&key).then(|| value.clone());
        let set = backend.set(&key, value).await;
        if let (Ok(()), Some(value)) = (&set, lease) {
            accessor.with(|mut access| access.get().leases.set(&backend, &key, value));
        }
        Ok(set.map_err(to_wit_v3))
    }

    async fn delete(
        accessor: &Accessor<T, Self>,
        store: Resource<OpenStore>,
        key: String,
    ) -> wasmtime::Result<Result<(), key_value_v3::Error>> {
        let backend = backend_v3(accessor, &store)?;
        let deleted = backend.delete(&key).await;
        if deleted.is_ok() {
            accessor.with(|mut access| access.get().leases.deleted(&backend, &key));
        }
        Ok(deleted.map_err(to_wit_v3))
    }

    async fn exists(
        accessor: &Accessor<T, Self>,
        store: Resource<OpenStore>,
        key: String,
    ) -> wasmtime::Result<Result<bool, key_value_v3::Error>> {
        let backend = backend_v3(accessor, &store)?;
        Ok(backend.exists(&key).await.map_err(to_wit_v3))
    }

    /// The keys are read from the backend whole (the backend seam returns a
    /// list), then handed to the guest as a stream; a failure is reported on
    /// the future after an empty stream.
    async fn get_keys(
        accessor: &Accessor<T, Self>,
        store: Resource<OpenStore>,
    ) -> wasmtime::Result<(
        StreamReader<String>,
        FutureReader<Result<(), key_value_v3::Error>>,
    )> {
        let backend = backend_v3(accessor, &store)?;
        let (keys, outcome) = match backend.get_keys().await {
            Ok(keys) => (keys, Ok(())),
            Err(error) => (Vec::new(), Err(to_wit_v3(error))),
        };
        accessor.with(|mut access| {
            let keys = StreamReader::new(&mut access, keys)?;
            let outcome =
                FutureReader::new(
                    &mut access,
                    async move { Ok::<_, wasmtime::Error>(outcome) },
                )?;
            Ok((keys, outcome))
        })
    }

    async fn drop(
        accessor: &Accessor<T, Self>,
        store: Resource<OpenStore>,
    ) -> wasmtime::Result<()> {
        accessor.with(|mut access| access.get().open.delete(store))?;
        Ok(())
    }
}

/// What a read of [`purge_wire::STORE_CAPACITY_KEY`] answers: the
/// store's capacity as decimal text, nothing if it has none.
pub(crate) fn capacity_value(backend: &dyn StoreBackend) -> Option<Vec<u8>> {
    backend
        .capacity_bytes()
        .map(|bytes| bytes.to_string().into_bytes())
}
