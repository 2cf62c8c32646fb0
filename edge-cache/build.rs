//! Names this build of the core by its sources: `EDGE_CACHE_BUILD_ID`, a
//! hash of every file under `src/`. A component marks itself with it
//! (`native_hits_mark!`), and edge-host answers fresh hits natively only
//! for a component whose core is the one it links: same sources, same key
//! derivation, same stored formats.

use std::path::Path;

fn main() {
    println!("cargo::rerun-if-changed=src");
    let mut files = Vec::new();
    collect(Path::new("src"), &mut files);
    files.sort();
    let mut hasher = blake3::Hasher::new();
    for file in &files {
        let text = std::fs::read(file).expect("a source file of the core can be read");
        hasher.update(file.to_string_lossy().as_bytes());
        hasher.update(&(text.len() as u64).to_le_bytes());
        hasher.update(&text);
    }
    let id = &hasher.finalize().to_hex()[..16];
    println!("cargo::rustc-env=EDGE_CACHE_BUILD_ID={id}");
}

fn collect(dir: &Path, files: &mut Vec<std::path::PathBuf>) {
    let entries = std::fs::read_dir(dir).expect("the core's src/ can be listed");
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            collect(&path, files);
        } else {
            files.push(path);
        }
    }
}
