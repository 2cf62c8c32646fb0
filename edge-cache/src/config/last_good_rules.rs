//! The last good cache rules, kept in the node-local store so that a broken
//! edit of a running edge's rules file never turns caching off.
//!
//! Where rules are read again matters: a WASI 0.3 instance reads them once,
//! when its first request builds its node, and keeps them for its life (a
//! bounded number of requests or an idle timeout); a WASI 0.2 instance is
//! one request, so every request reads them. Neither can keep "the last
//! rules that parsed" in its own memory across the edit — the instance that
//! reads the broken text is a new one — so they are kept beside the
//! entries, in the node's own store, with the hash of the text last seen
//! (good or broken). That one record lets every instance:
//!
//! - serve with the last good rules when the current text is broken;
//! - log a change once per node (the first instance to see a new text
//!   reports it; the rest find its hash already recorded), not once per
//!   instance;
//! - proxy without caching only if no good rules were ever loaded.
//!
//! This module is the record's form and the decision, both pure; the node
//! reads and writes the store.

/// The hash rules are named by in logs, metrics and the record: the first
/// 16 hex digits of the BLAKE3 hash of their text (as `edge-host` shows it).
pub fn rules_hash(text: &str) -> String {
    blake3::hash(text.as_bytes()).to_hex()[..16].to_owned()
}

/// What the node-local store holds for one rules source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RulesRecord {
    /// The last rules that loaded, if any ever did.
    pub good: Option<GoodRules>,
    /// The hash of the text last read, good or broken: a text whose hash
    /// is this has been reported already.
    pub seen: String,
}

/// Rules that loaded, with their text so another instance can parse them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GoodRules {
    /// [`rules_hash`] of `text`.
    pub hash: String,
    /// When they were first loaded, in seconds since the Unix epoch.
    pub loaded_at: u64,
    /// The rules document.
    pub text: String,
}

/// The first line of a stored record: its format, so a later form can be
/// told apart (as entries are, `ECE1`/`ECE2`).
const FORMAT: &str = "ECR1";

impl RulesRecord {
    /// The stored form: the format, the good hash (empty: none), when it
    /// was loaded, the seen hash, one a line, then the good text.
    pub fn encode(&self) -> Vec<u8> {
        let (hash, loaded_at, text) = match &self.good {
            Some(good) => (good.hash.as_str(), good.loaded_at, good.text.as_str()),
            None => ("", 0, ""),
        };
        format!("{FORMAT}\n{hash}\n{loaded_at}\n{}\n{text}", self.seen).into_bytes()
    }

    /// Reads a stored record; anything else (another format, a damaged
    /// value) is no record, as if none had been stored.
    pub fn decode(bytes: &[u8]) -> Option<RulesRecord> {
        let text = std::str::from_utf8(bytes).ok()?;
        let mut parts = text.splitn(5, '\n');
        if parts.next()? != FORMAT {
            return None;
        }
        let hash = parts.next()?;
        let loaded_at = parts.next()?.parse().ok()?;
        let seen = parts.next()?.to_owned();
        let rules = parts.next()?;
        let good = match hash {
            "" => None,
            // A text that does not hash to its recorded hash is damaged.
            hash if rules_hash(rules) == hash => Some(GoodRules {
                hash: hash.to_owned(),
                loaded_at,
                text: rules.to_owned(),
            }),
            _ => return None,
        };
        Some(RulesRecord { good, seen })
    }
}

/// Which rules an instance serves with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RulesInUse {
    /// The rules just read.
    Current,
    /// The current text is broken: the last good rules (their text is in
    /// the record).
    LastGood(GoodRules),
    /// Broken, and none ever loaded: proxy without caching.
    None,
}

/// What an instance does with the rules text it read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RulesVerdict {
    /// The rules to serve with.
    pub use_: RulesInUse,
    /// The record to store, when it changes.
    pub store: Option<RulesRecord>,
    /// A line to log: the first instance to see a new text says what it
    /// means.
    pub log: Option<String>,
}

/// Decides what an instance does with the rules it read from `source`
/// (`text`, whose loader said `problem` if broken), given the stored
/// `record` and the time `now` (Unix seconds).
pub fn decide(
    source: &str,
    text: &str,
    problem: Option<&str>,
    record: Option<RulesRecord>,
    now: u64,
) -> RulesVerdict {
    let hash = rules_hash(text);
    let seen_before = record.as_ref().is_some_and(|r| r.seen == hash);
    let last_good = record.and_then(|r| r.good);
    match problem {
        None => {
            let unchanged = seen_before && last_good.as_ref().is_some_and(|g| g.hash == hash);
            if unchanged {
                return RulesVerdict {
                    use_: RulesInUse::Current,
                    store: None,
                    log: None,
                };
            }
            let log = match &last_good {
                Some(previous) if previous.hash != hash => format!(
                    "edge-cache: cache rules changed: {source} (blake3 {hash}, were {})",
                    previous.hash
                ),
                _ => format!("edge-cache: cache rules loaded: {source} (blake3 {hash})"),
            };
            // A text loaded before keeps when it was first loaded.
            let loaded_at = match &last_good {
                Some(previous) if previous.hash == hash => previous.loaded_at,
                _ => now,
            };
            RulesVerdict {
                use_: RulesInUse::Current,
                store: Some(RulesRecord {
                    good: Some(GoodRules {
                        hash: hash.clone(),
                        loaded_at,
                        text: text.to_owned(),
                    }),
                    seen: hash,
                }),
                log: Some(log),
            }
        }
        Some(problem) => {
            let log = (!seen_before).then(|| match &last_good {
                Some(good) => format!(
                    "edge-cache: {problem}; still serving the last good cache rules \
                     (blake3 {}, loaded {} s ago) until it is fixed",
                    good.hash,
                    now.saturating_sub(good.loaded_at)
                ),
                None => format!(
                    "edge-cache: {problem}; no good cache rules were ever loaded, so the \
                     edge proxies without caching until it is fixed"
                ),
            });
            let store = (!seen_before).then(|| RulesRecord {
                good: last_good.clone(),
                seen: hash,
            });
            let use_ = match last_good {
                Some(good) => RulesInUse::LastGood(good),
                None => RulesInUse::None,
            };
            RulesVerdict { use_, store, log }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"{"rules": []}"#;
    const OTHER: &str = r#"{"rules": [{"path_prefix": "/a", "bypass": true}]}"#;
    const BROKEN: &str = r#"{"rules": [}"#;

    fn stored(verdict: &RulesVerdict) -> Option<RulesRecord> {
        verdict.store.clone()
    }

    #[test]
    fn a_record_round_trips_and_damage_is_no_record() {
        let record = RulesRecord {
            good: Some(GoodRules {
                hash: rules_hash(GOOD),
                loaded_at: 1_700_000_000,
                text: GOOD.into(),
            }),
            seen: rules_hash(BROKEN),
        };
        assert_eq!(RulesRecord::decode(&record.encode()), Some(record.clone()));
        let multiline = RulesRecord {
            good: Some(GoodRules {
                hash: rules_hash("{\n \"rules\": []\n}\n"),
                loaded_at: 5,
                text: "{\n \"rules\": []\n}\n".into(),
            }),
            seen: "x".into(),
        };
        assert_eq!(
            RulesRecord::decode(&multiline.encode()),
            Some(multiline.clone())
        );
        let never = RulesRecord {
            good: None,
            seen: rules_hash(BROKEN),
        };
        assert_eq!(RulesRecord::decode(&never.encode()), Some(never));
        let mut damaged = record.encode();
        damaged.pop();
        assert_eq!(RulesRecord::decode(&damaged), None);
        assert_eq!(RulesRecord::decode(b"ECR9\n\n0\nx\n"), None);
        assert_eq!(RulesRecord::decode(b""), None);
    }

    #[test]
    fn first_good_rules_are_stored_and_logged_once() {
        let first = decide("/rules/r.json", GOOD, None, None, 100);
        assert_eq!(first.use_, RulesInUse::Current);
        assert!(first.log.unwrap().contains("cache rules loaded"));
        let again = decide(
            "/rules/r.json",
            GOOD,
            None,
            stored(&decide("s", GOOD, None, None, 100)),
            200,
        );
        assert_eq!(again.use_, RulesInUse::Current);
        assert_eq!(again.store, None, "nothing to write when nothing changed");
        assert_eq!(again.log, None, "said once, by the first instance");
    }

    #[test]
    fn a_broken_edit_keeps_the_last_good_rules_and_is_logged_once() {
        let good = stored(&decide("s", GOOD, None, None, 100));
        let broken = decide("s", BROKEN, Some("s: line 1"), good, 160);
        let RulesInUse::LastGood(last) = &broken.use_ else {
            panic!("{:?}", broken.use_)
        };
        assert_eq!(last.text, GOOD);
        let log = broken.log.clone().unwrap();
        assert!(log.contains("still serving the last good"), "{log}");
        assert!(log.contains(&rules_hash(GOOD)), "{log}");
        assert!(log.contains("loaded 60 s ago"), "{log}");
        // The next instance reads the same broken text: same rules, silent.
        let next = decide("s", BROKEN, Some("s: line 1"), stored(&broken), 170);
        assert_eq!(next.use_, broken.use_);
        assert_eq!((next.store, next.log), (None, None));
    }

    #[test]
    fn a_fix_with_other_rules_replaces_the_last_good_and_says_so() {
        let good = stored(&decide("s", GOOD, None, None, 100));
        let broken = stored(&decide("s", BROKEN, Some("x"), good, 160));
        let fixed = decide("s", OTHER, None, broken, 170);
        assert_eq!(fixed.use_, RulesInUse::Current);
        let log = fixed.log.unwrap();
        assert!(log.contains("cache rules changed"), "{log}");
        assert!(
            log.contains(&rules_hash(GOOD)),
            "names what they were: {log}"
        );
        let record = fixed.store.unwrap();
        let good = record.good.unwrap();
        assert_eq!((good.text.as_str(), good.loaded_at), (OTHER, 170));
    }

    #[test]
    fn going_back_to_the_good_text_after_a_break_is_a_change_but_keeps_its_load_time() {
        let good = stored(&decide("s", GOOD, None, None, 100));
        let broken = stored(&decide("s", BROKEN, Some("x"), good, 160));
        let back = decide("s", GOOD, None, broken, 170);
        assert_eq!(back.use_, RulesInUse::Current);
        assert!(back.log.unwrap().contains("loaded"));
        assert_eq!(back.store.unwrap().good.unwrap().loaded_at, 100);
    }

    #[test]
    fn broken_with_no_good_rules_ever_proxies_without_caching_and_says_so() {
        let verdict = decide("s", BROKEN, Some("s: line 1"), None, 100);
        assert_eq!(verdict.use_, RulesInUse::None);
        let log = verdict.log.clone().unwrap();
        assert!(log.contains("proxies without caching"), "{log}");
        let next = decide("s", BROKEN, Some("s: line 1"), stored(&verdict), 101);
        assert_eq!((next.use_, next.log), (RulesInUse::None, None));
        // A second, different typo is a change: reported again.
        let other = decide("s", "{", Some("s: line 2"), stored(&verdict), 102);
        assert!(other.log.is_some());
    }
}
