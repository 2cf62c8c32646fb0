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
    /// How many targets of each kind it accepted: the name receipts had
    /// first, kept for the readers written for it. Not objects removed
    /// (Varnish's and Fastly's counts): see `targets`.
    pub purged: Purged,
    /// The same counts under the name that says what they are: targets
    /// accepted. A purge invalidates scopes (a URL with every variant, a
    /// tag, a prefix), found stale when next looked up; how many stored
    /// objects they covered is not known when it answers.
    #[serde(default)]
    pub targets: Purged,
}

/// A purge's targets counted by kind (targets named, not objects removed).
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
            targets: Purged {
                urls: 2,
                tags: 1,
                prefixes: 0,
                all: false,
            },
        };
        let json = serde_json::to_string(&receipt).unwrap();
        assert_eq!(serde_json::from_str::<Receipt>(&json).unwrap(), receipt);
        let newer = r#"{"id":"p1","soft":true,"purged":{"urls":2,"tags":1,"prefixes":0,"all":false,"later":1},"targets":{"urls":2,"tags":1,"prefixes":0,"all":false},"later":2}"#;
        assert_eq!(serde_json::from_str::<Receipt>(newer).unwrap(), receipt);
        // A receipt from before `targets` still reads.
        let older =
            r#"{"id":"p1","soft":true,"purged":{"urls":2,"tags":1,"prefixes":0,"all":false}}"#;
        assert_eq!(
            serde_json::from_str::<Receipt>(older).unwrap().purged,
            receipt.purged
        );
    }
}
