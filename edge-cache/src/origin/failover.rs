//! A backup origin: when the primary fails a request (refused, timed out,
//! broken, or answered 5xx), the same request goes to the backup once.

use crate::seams::{Origin, OriginFailure, OriginRequest, Response};

/// The primary origin with an optional backup.
pub(crate) struct FailoverOrigin<'a, O> {
    /// Where requests go first.
    pub primary: &'a O,
    /// Where they go when the primary fails.
    pub backup: Option<&'a O>,
}

impl<O: Origin> Origin for FailoverOrigin<'_, O> {
    async fn send(&self, request: OriginRequest) -> Result<Response, OriginFailure> {
        // A streamed body (an upload) goes once, to the primary only.
        let (Some(backup), Some(copy)) = (self.backup, request.resendable_copy()) else {
            return self.primary.send(request).await;
        };
        match self.primary.send(request).await {
            Ok(response) if response.status < 500 => Ok(response),
            Ok(primary_response) => match backup.send(copy).await {
                Ok(response) if response.status < 500 => Ok(response),
                // Both failed: the primary's answer is the one to report.
                _ => Ok(primary_response),
            },
            Err(primary_failure) => match backup.send(copy).await {
                Ok(response) => Ok(response),
                Err(_) => Err(primary_failure),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    use crate::test_support::{FakeOrigin, block_on, origin_request, status_response};

    /// An origin that always gives `answer` (a status, or a failure).
    fn scripted(answer: Result<u16, OriginFailure>) -> FakeOrigin {
        FakeOrigin::new(move |_| answer.clone().map(status_response))
    }

    fn run(
        primary: Result<u16, OriginFailure>,
        backup: Option<Result<u16, OriginFailure>>,
    ) -> (Result<u16, OriginFailure>, usize, usize) {
        let primary = scripted(primary);
        let backup = backup.map(scripted);
        let origin = FailoverOrigin {
            primary: &primary,
            backup: backup.as_ref(),
        };
        let result = block_on(origin.send(origin_request())).map(|r| r.status);
        (
            result,
            primary.calls.get(),
            backup.map(|b| b.calls.get()).unwrap_or(0),
        )
    }

    #[test]
    fn backup_is_used_once_when_the_primary_fails() {
        let refused = || Err(OriginFailure::Unreachable("connection refused"));
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
