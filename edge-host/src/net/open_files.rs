//! The process's open-file limit, and the connection caps that fit in it.
//!
//! Every client connection is a descriptor, and a miss adds one to the
//! origin. With the usual soft limit of 1,024, about 1,050 connections
//! (to any listener) exhausted the process: accepts failed everywhere and
//! the edge stopped answering. So `edge-host up` raises the soft limit to
//! the hard one at start (as nginx's `worker_rlimit_nofile` lets an operator
//! do), and lowers a connection cap that could not be honoured within it.

/// Descriptors kept for everything that is not a client connection: the
/// metrics listener's connections, connections being refused, idle origin
/// connections, store files and connections, logs, compiled components.
pub const RESERVED: u64 = 256;

/// Raises the soft open-file limit to the hard limit; returns the soft
/// limit in force afterwards (`None` where it cannot be read).
pub fn raise_open_file_limit() -> Option<u64> {
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) => Some(limit),
        Err(_) => rlimit::getrlimit(rlimit::Resource::NOFILE)
            .ok()
            .map(|(soft, _)| soft),
    }
}

/// The most client connections a listener can hold with `open_files`
/// descriptors: each may need one more towards the origin, and
/// [`RESERVED`] stay for the rest.
pub fn connection_budget(open_files: u64) -> u32 {
    let budget = open_files.saturating_sub(RESERVED) / 2;
    u32::try_from(budget).unwrap_or(u32::MAX).max(1)
}

/// `requested` connections, lowered to what `open_files` allows; with the
/// reason when it was lowered.
pub fn fit_connections(requested: u32, open_files: Option<u64>) -> (u32, Option<String>) {
    let Some(open_files) = open_files else {
        return (requested, None);
    };
    let budget = connection_budget(open_files);
    if requested <= budget {
        return (requested, None);
    }
    let why = format!(
        "--max-connections {requested} lowered to {budget}: the open-file limit is {open_files} \
         (each connection may need a second descriptor towards the origin, and {RESERVED} are kept \
         for the rest); raise the limit (`ulimit -n`, systemd's LimitNOFILE) to allow more"
    );
    (budget, Some(why))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cap_is_lowered_only_when_the_limit_cannot_hold_it() {
        assert_eq!(connection_budget(1024), 384);
        assert_eq!(connection_budget(100), 1);
        assert_eq!(fit_connections(512, Some(1 << 20)), (512, None));
        assert_eq!(fit_connections(512, None), (512, None));
        let (fitted, why) = fit_connections(512, Some(1024));
        assert_eq!(fitted, 384);
        let why = why.expect("a reason");
        assert!(
            why.contains("--max-connections 512 lowered to 384"),
            "{why}"
        );
        assert!(why.contains("open-file limit is 1024"), "{why}");
    }

    #[test]
    fn raising_leaves_the_soft_limit_at_the_hard_one() {
        let raised = raise_open_file_limit().expect("readable");
        let (soft, hard) = rlimit::getrlimit(rlimit::Resource::NOFILE).unwrap();
        assert_eq!(raised, soft);
        // Some systems cap the soft limit below an unlimited hard one.
        assert!(soft == hard || hard == rlimit::INFINITY, "{soft} {hard}");
    }
}
