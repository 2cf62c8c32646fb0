//! Static assets under their plain names: safe path resolution and media
//! types.

use std::path::{Component, Path, PathBuf};

use percent_encoding::percent_decode_str;

/// Why a request path cannot name a file under the root.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    /// The path tries to leave the root (`..`, encoded or not, absolute
    /// components, back-slashes, NUL).
    #[error("path escapes the static root")]
    Traversal,
    /// The path is not valid percent-encoded UTF-8.
    #[error("path is not valid UTF-8")]
    Encoding,
}

/// Maps a URL path below the static mount (e.g. `css/app.css`) to a file
/// under `root`, refusing anything that could resolve outside it.
pub fn resolve(root: &Path, url_path: &str) -> Result<PathBuf, PathError> {
    let decoded = percent_decode_str(url_path)
        .decode_utf8()
        .map_err(|_| PathError::Encoding)?;
    if decoded.contains('\\') || decoded.contains('\0') {
        return Err(PathError::Traversal);
    }
    let mut path = root.to_path_buf();
    for component in Path::new(decoded.trim_start_matches('/')).components() {
        match component {
            Component::Normal(part) => path.push(part),
            Component::CurDir => {}
            Component::ParentDir | Component::RootDir | Component::Prefix(_) => {
                return Err(PathError::Traversal);
            }
        }
    }
    Ok(path)
}

/// The media type for a file name.
pub fn content_type(path: &Path) -> String {
    let mime = mime_guess::from_path(path).first_or_octet_stream();
    match mime.type_() {
        mime_guess::mime::TEXT => format!("{mime}; charset=utf-8"),
        _ if mime.subtype() == "javascript" || mime.subtype() == "json" => {
            format!("{mime}; charset=utf-8")
        }
        _ => mime.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_inside_the_root() {
        let root = Path::new("/srv/static");
        assert_eq!(
            resolve(root, "css/app.css").unwrap(),
            Path::new("/srv/static/css/app.css")
        );
        assert_eq!(
            resolve(root, "/./a%20b.txt").unwrap(),
            Path::new("/srv/static/a b.txt")
        );
    }

    #[test]
    fn refuses_traversal_in_every_spelling() {
        let root = Path::new("/srv/static");
        for evil in [
            "../etc/passwd",
            "a/../../x",
            "%2e%2e/secret",
            "%2E%2E%2Fsecret",
            "..%2fsecret",
            "a%5c..%5cb",
            "a%00b",
            "//etc/passwd/..",
        ] {
            assert_eq!(resolve(root, evil), Err(PathError::Traversal), "{evil}");
        }
        assert_eq!(resolve(root, "%ff"), Err(PathError::Encoding));
    }

    #[test]
    fn content_types_carry_charset_for_text() {
        assert_eq!(content_type(Path::new("a.css")), "text/css; charset=utf-8");
        assert_eq!(content_type(Path::new("a.png")), "image/png");
        assert_eq!(
            content_type(Path::new("a.js")),
            "text/javascript; charset=utf-8"
        );
        assert_eq!(
            content_type(Path::new("a.unknownext")),
            "application/octet-stream"
        );
    }
}
