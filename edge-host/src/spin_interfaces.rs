//! Host side of `fermyon:spin/variables@2.0.0`.
//!
//! Bindings are generated from Spin's own WIT files (`edge-host/wit/`).
//! Permissions are the manifest's: a component reads only the variables it
//! declares.

use wasmtime::component::{HasSelf, Linker};

use crate::state::RequestState;

mod bindings {
    wasmtime::component::bindgen!({
        path: "wit",
        world: "edge-host:host/variables-imports",
        imports: { default: async | trappable },
    });
}

use bindings::fermyon::spin::variables;

/// Adds `fermyon:spin/variables` to the linker.
pub fn add_to_linker(linker: &mut Linker<RequestState>) -> anyhow::Result<()> {
    bindings::VariablesImports::add_to_linker::<_, HasSelf<_>>(linker, |state| state)?;
    Ok(())
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
