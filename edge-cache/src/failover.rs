//! A backup origin: when the primary fails a request (refused, timed out,
//! broken, or answered 5xx), the same request goes to the backup once.

use crate::origin_failure::OriginFailure;
use crate::request_flow::{Origin, OriginRequest, Response};

/// The primary origin with an optional backup.
pub struct FailoverOrigin<'a, O> {
    /// Where requests go first.
    pub primary: &'a O,
    /// Where they go when the primary fails.
    pub backup: Option<&'a O>,
}

impl<O: Origin> Origin for FailoverOrigin<'_, O> {
    fn send(&self, request: OriginRequest) -> Result<Response, OriginFailure> {
        let Some(backup) = self.backup else {
            return self.primary.send(request);
        };
        match self.primary.send(request.clone()) {
            Ok(response) if response.status < 500 => Ok(response),
            Ok(primary_response) => match backup.send(request) {
                Ok(response) if response.status < 500 => Ok(response),
                // Both failed: the primary's answer is the one to report.
                _ => Ok(primary_response),
            },
            Err(primary_failure) => match backup.send(request) {
                Ok(response) => Ok(response),
                Err(_) => Err(primary_failure),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;
    use std::time::Duration;

    struct Scripted {
        answer: Result<u16, OriginFailure>,
        calls: Cell<u32>,
    }

    impl Scripted {
        fn new(answer: Result<u16, OriginFailure>) -> Self {
            Scripted {
                answer,
                calls: Cell::new(0),
            }
        }
    }

    impl Origin for Scripted {
        fn send(&self, _: OriginRequest) -> Result<Response, OriginFailure> {
            self.calls.set(self.calls.get() + 1);
            self.answer.clone().map(|status| Response {
                status,
                headers: http::HeaderMap::new(),
                body: Vec::new(),
            })
        }
    }

    fn request() -> OriginRequest {
        OriginRequest {
            method: http::Method::GET,
            target: "/".into(),
            headers: http::HeaderMap::new(),
            body: Vec::new(),
        }
    }

    fn run(
        primary: Result<u16, OriginFailure>,
        backup: Option<Result<u16, OriginFailure>>,
    ) -> (Result<u16, OriginFailure>, u32, u32) {
        let primary = Scripted::new(primary);
        let backup = backup.map(Scripted::new);
        let origin = FailoverOrigin {
            primary: &primary,
            backup: backup.as_ref(),
        };
        let result = origin.send(request()).map(|r| r.status);
        (
            result,
            primary.calls.get(),
            backup.map(|b| b.calls.get()).unwrap_or(0),
        )
    }

    #[test]
    fn backup_is_used_once_when_the_primary_fails() {
        let refused = || Err(OriginFailure::Unreachable("connection refused".into()));
        let timed_out = Err(OriginFailure::TimedOut(Duration::from_millis(5)));
        assert_eq!(run(Ok(200), Some(Ok(200))), (Ok(200), 1, 0));
        assert_eq!(
            run(Ok(404), Some(Ok(200))),
            (Ok(404), 1, 0),
            "4xx is an answer, not a failure"
        );
        assert_eq!(run(Ok(503), Some(Ok(200))), (Ok(200), 1, 1));
        assert_eq!(run(refused(), Some(Ok(200))), (Ok(200), 1, 1));
        assert_eq!(run(timed_out.clone(), Some(Ok(200))), (Ok(200), 1, 1));
        assert_eq!(
            run(Ok(503), Some(Ok(502))),
            (Ok(503), 1, 1),
            "primary's answer is reported"
        );
        assert_eq!(run(refused(), Some(timed_out)), (refused(), 1, 1));
        assert_eq!(run(refused(), None), (refused(), 1, 0));
    }
}
