//! The purge API's answer to an accepted purge: `200` with this JSON,
//! written by the edge's purge API and read by edge-host, which counts
//! purges by kind from it (the API's path is the component's
//! configuration, so the host recognises a purge by its receipt).

use serde::{Deserialize, Serialize};

/// What an accepted purge did: `{"id":…,"soft":…,"purged":{…}}`.
/// Readers ignore fields they do not know, so the edge may add some.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Receipt {
    /// A short id naming this purge in the edge's log.
    pub id: String,
    /// Whether covered entries were marked stale rather than invalid.
    pub soft: bool,
    /// How many targets of each kind it covered.
    pub purged: Purged,
}

/// A purge's targets counted by kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Purged {
    /// URLs, each with every cached variant.
    pub urls: u64,
    /// `Surrogate-Key` tags.
    pub tags: u64,
    /// Path prefixes.
    pub prefixes: u64,
    /// Whether everything on the host was purged.
    pub all: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_receipt_reads_back_and_unknown_fields_are_ignored() {
        let receipt = Receipt {
            id: "p1".into(),
            soft: true,
            purged: Purged {
                urls: 2,
                tags: 1,
                prefixes: 0,
                all: false,
            },
        };
        let json = serde_json::to_string(&receipt).unwrap();
        assert_eq!(serde_json::from_str::<Receipt>(&json).unwrap(), receipt);
        let newer = r#"{"id":"p1","soft":true,"purged":{"urls":2,"tags":1,"prefixes":0,"all":false,"later":1},"later":2}"#;
        assert_eq!(serde_json::from_str::<Receipt>(newer).unwrap(), receipt);
    }
}
