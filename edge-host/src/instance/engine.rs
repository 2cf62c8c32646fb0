//! The wasmtime engine and the on-disk cache of compiled components.
//!
//! Compiling a component with Cranelift takes seconds; loading a cached
//! compilation takes milliseconds. The cache key covers the component's
//! bytes and the engine's compatibility hash, so a new wasmtime or new
//! settings never load stale machine code.

use std::hash::{DefaultHasher, Hash, Hasher};
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use wasmtime::component::Component;
use wasmtime::{Config, Enabled, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

/// How many component instances may be alive at once (one per in-flight
/// request for WASI 0.2; a WASI 0.3 instance serves several); also sizes the
/// pooling allocator.
pub const DEFAULT_MAX_INSTANCES: u32 = 256;

/// Low bytes of a freed linear memory kept resident: about what an edge
/// instance touches serving one request (its heap and shadow stack).
const KEEP_RESIDENT_MEMORY_BYTES: usize = 2 << 20;

/// Low bytes of a freed table kept resident.
const KEEP_RESIDENT_TABLE_BYTES: usize = 64 << 10;

/// Low bytes of a freed async (fiber) stack kept resident.
const KEEP_RESIDENT_STACK_BYTES: usize = 128 << 10;

/// Creates the engine: async support for `wasi:http` (and the component
/// model's async, which WASI 0.3 components need), the pooling allocator
/// for cheap per-request instantiation (falling back to on-demand allocation
/// where the machine refuses the address-space reservation), each linear
/// memory able to grow to `max_memory_bytes` (`--max-memory-mb`, checked
/// by [`check_max_memory`]).
///
/// The pool's slot for a memory is its virtual reservation (wasmtime's
/// `memory_reservation`, 4 GiB on 64-bit hosts) plus a guard, whatever
/// `max_memory_size` is; `max_memory_size` only says how much of the slot
/// may become accessible. So following the flag costs no address space
/// and leaves instantiation as it was; only a value above the reservation,
/// which [`check_max_memory`] refuses, would not fit.
pub fn new_engine(max_instances: u32, max_memory_bytes: usize) -> anyhow::Result<Engine> {
    check_max_memory(max_memory_bytes).map_err(anyhow::Error::msg)?;
    let mut config = base_config();
    let mut pool = PoolingAllocationConfig::default();
    // A component holds a few core instances (the program, WASI adapters).
    pool.total_component_instances(max_instances)
        .total_core_instances(max_instances * 4)
        .total_memories(max_instances * 2)
        .total_tables(max_instances * 4)
        .max_memory_size(max_memory_bytes)
        // A freed slot keeps its low pages mapped and is reset in place
        // (only the pages the instance touched, found with Linux's
        // PAGEMAP_SCAN where the kernel has it), so the next instance in it
        // takes no page faults there: a WASI 0.2 instance per request
        // otherwise refaults its heap, stack and tables every time.
        .linear_memory_keep_resident(KEEP_RESIDENT_MEMORY_BYTES)
        .table_keep_resident(KEEP_RESIDENT_TABLE_BYTES)
        .async_stack_keep_resident(KEEP_RESIDENT_STACK_BYTES)
        .pagemap_scan(Enabled::Auto);
    config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    match Engine::new(&config) {
        Ok(engine) => Ok(engine),
        Err(error) => {
            tracing::warn!("pooling allocator unavailable ({error:#}); using on-demand allocation");
            Engine::new(&base_config()).map_err(anyhow::Error::from)
        }
    }
}

/// Whether an instance's linear memory may be limited to
/// `max_memory_bytes`: at least one MiB, and at most [`MAX_MEMORY_MB`] (a
/// 32-bit WebAssembly memory's whole address space, and the pool's
/// reservation per memory). The error names the flag and the largest value.
pub fn check_max_memory(max_memory_bytes: usize) -> Result<(), String> {
    if max_memory_bytes < 1 << 20 {
        return Err(too_small());
    }
    let mib = max_memory_bytes as u64 >> 20;
    if mib > MAX_MEMORY_MB {
        return Err(too_large(mib));
    }
    Ok(())
}

fn too_small() -> String {
    format!(
        "--max-memory-mb must be at least 1 (MiB); the largest accepted value is {MAX_MEMORY_MB}"
    )
}

fn too_large(mib: u64) -> String {
    format!(
        "--max-memory-mb {mib} is more than an instance's memory can use: a WebAssembly \
         memory addresses at most 4 GiB; the largest accepted value is {MAX_MEMORY_MB}"
    )
}

/// Reads `--max-memory-mb`: a whole number of MiB that
/// [`check_max_memory`] accepts.
pub fn parse_max_memory_mb(text: &str) -> Result<u64, String> {
    let mib: u64 = text.trim().parse().map_err(|_| {
        format!("expected a whole number of MiB; the largest accepted value is {MAX_MEMORY_MB}")
    })?;
    match mib {
        0 => Err(too_small()),
        mib if mib > MAX_MEMORY_MB => Err(too_large(mib)),
        mib => Ok(mib),
    }
}

/// The largest `--max-memory-mb`: 4 GiB, all a 32-bit WebAssembly memory
/// can address, and what the pooling allocator reserves for each memory.
pub const MAX_MEMORY_MB: u64 = 4096;

fn base_config() -> Config {
    let mut config = Config::new();
    config.wasm_component_model(true);
    config.wasm_component_model_async(true);
    // Guests yield at each epoch tick: see `limits::EPOCH_TICK`.
    config.epoch_interruption(true);
    // For profiling: `perf` names guest functions from /tmp/perf-PID.map
    // (bench/profile sets it). Off by default: the map grows per module.
    if std::env::var_os("EDGE_HOST_PERF_MAP").is_some() {
        config.profiler(wasmtime::ProfilingStrategy::PerfMap);
    }
    config
}

/// Where compiled components are cached: `$EDGE_HOST_CACHE_DIR`, else the
/// user cache directory, else the system temp directory.
pub fn default_cache_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("EDGE_HOST_CACHE_DIR") {
        return PathBuf::from(dir);
    }
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(std::env::temp_dir);
    base.join("edge-host")
}

/// Loads a component, from the compilation cache when possible.
pub fn load_component(
    engine: &Engine,
    wasm_path: &Path,
    cache_dir: &Path,
) -> anyhow::Result<Component> {
    let bytes = std::fs::read(wasm_path)
        .with_context(|| format!("reading component {}", wasm_path.display()))?;
    let mut engine_hash = DefaultHasher::new();
    engine
        .precompile_compatibility_hash()
        .hash(&mut engine_hash);
    let mut key = blake3::Hasher::new();
    key.update(&bytes);
    key.update(&engine_hash.finish().to_le_bytes());
    let cached = cache_dir.join(format!("{}.cwasm", key.finalize().to_hex()));

    if cached.exists() {
        // SAFETY: the file is one this function wrote from `Component::serialize`
        // into a cache directory the host owns, named by the hash of the
        // source and engine; wasmtime additionally checks the header.
        match unsafe { Component::deserialize_file(engine, &cached) } {
            Ok(component) => return Ok(component),
            Err(error) => tracing::warn!(
                "ignoring unusable compiled cache {}: {error:#}",
                cached.display()
            ),
        }
    }

    let started = std::time::Instant::now();
    let component = Component::new(engine, &bytes).map_err(|e| {
        anyhow::Error::from(e).context(format!("compiling component {}", wasm_path.display()))
    })?;
    tracing::info!(
        "compiled {} in {:.1?}",
        wasm_path.display(),
        started.elapsed()
    );
    if let Err(error) = write_cache(&component, &cached) {
        tracing::warn!("could not cache compiled component: {error:#}");
    }
    Ok(component)
}

/// Writes atomically (temp file + rename) so concurrent hosts never read a
/// half-written file.
fn write_cache(component: &Component, path: &Path) -> anyhow::Result<()> {
    let dir = path.parent().context("cache path has no parent")?;
    std::fs::create_dir_all(dir)?;
    let serialized = component.serialize()?;
    let tmp = dir.join(format!(
        ".{}.{}.tmp",
        path.file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("component"),
        std::process::id()
    ));
    std::fs::write(&tmp, serialized)?;
    std::fs::rename(&tmp, path)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_memory_limit_is_from_1_mib_to_4_gib_and_a_refusal_names_the_flag_and_the_largest() {
        assert_eq!(parse_max_memory_mb("512"), Ok(512));
        assert_eq!(parse_max_memory_mb("4096"), Ok(4096));
        assert_eq!(parse_max_memory_mb("1"), Ok(1));
        for bad in [
            "0",
            "4097",
            "3000000",
            "18446744073709551615",
            "-1",
            "1GiB",
            "",
        ] {
            let error = parse_max_memory_mb(bad).expect_err(bad);
            assert!(error.contains("4096"), "{bad}: {error}");
        }
        assert!(check_max_memory(0).unwrap_err().contains("--max-memory-mb"));
        let error = check_max_memory(5000 << 20).unwrap_err();
        assert!(error.starts_with("--max-memory-mb 5000 "), "{error}");
        assert!(
            error.contains("the largest accepted value is 4096"),
            "{error}"
        );
    }

    #[test]
    fn an_engine_is_made_for_the_largest_limit_and_not_past_it() {
        assert!(new_engine(4, (MAX_MEMORY_MB as usize) << 20).is_ok());
        let error = new_engine(4, 8192 << 20).expect_err("refused");
        assert!(
            error.to_string().contains("--max-memory-mb 8192"),
            "{error}"
        );
    }
}
