//! Clients of the large-object scenarios: one GET read as it arrives, timed
//! to its first and last byte, and a closed-loop load of such GETs (whole
//! objects or seeded random aligned ranges) that counts bytes as well as
//! requests. Bodies are read in 1 MiB reads and dropped, so the client
//! costs little next to what it measures (wrk reads 8 KiB at a time), and
//! the first bytes of every answer are checked against what the origin
//! generates there, so a cache answering the wrong range shows.

use std::io::{self, BufRead, BufReader, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use crate::client::read_line;
use crate::results::WrkSummary;
use crate::servers;

/// Bytes asked of the socket per read.
const READ_BUFFER: usize = 1 << 20;

/// Bytes at the start of every answer checked against the origin's.
const CHECKED: usize = 64;

/// How one GET went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub status: u16,
    /// Body bytes read (all of them when `complete`).
    pub body_bytes: u64,
    /// The body's declared length (`Content-Length`; `None` when chunked).
    pub declared: Option<u64>,
    /// From the request's first byte written to the answer's first byte.
    pub first_byte: Duration,
    /// From the request's first byte written to the last byte read.
    pub last_byte: Duration,
    /// The body ended (rather than the deadline passing first).
    pub complete: bool,
    /// The checked bytes were what was expected.
    pub matches: bool,
    /// The server will close the connection.
    pub closes: bool,
}

/// One keep-alive connection reading bodies as they arrive.
pub struct Stream {
    addr: String,
    reader: BufReader<TcpStream>,
}

impl Stream {
    pub fn open(addr: &str) -> io::Result<Stream> {
        let stream = TcpStream::connect(addr)?;
        stream.set_nodelay(true)?;
        stream.set_read_timeout(Some(Duration::from_secs(60)))?;
        Ok(Stream {
            addr: addr.to_owned(),
            reader: BufReader::with_capacity(READ_BUFFER, stream),
        })
    }

    /// `GET target` (with `Range: bytes=start-last` when given). The body
    /// is read until its end, or until `deadline` passes (then the answer
    /// is incomplete and the connection must be dropped). Its first bytes
    /// are compared with `expected`.
    pub fn get(
        &mut self,
        target: &str,
        range: Option<(u64, u64)>,
        expected: &[u8],
        deadline: Option<Instant>,
    ) -> io::Result<Answer> {
        let mut request = format!("GET {target} HTTP/1.1\r\nhost: {}\r\n", self.addr);
        if let Some((start, last)) = range {
            request.push_str(&format!("range: bytes={start}-{last}\r\n"));
        }
        request.push_str("\r\n");
        let started = Instant::now();
        self.reader.get_mut().write_all(request.as_bytes())?;
        if self.reader.fill_buf()?.is_empty() {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        let first_byte = started.elapsed();
        let (status, declared, chunked, closes) = read_head(&mut self.reader)?;
        let mut body = Body {
            reader: &mut self.reader,
            expected,
            checked: 0,
            matches: true,
            read: 0,
            deadline,
        };
        let complete = if status == 204 || status == 304 || (100..200).contains(&status) {
            true
        } else if chunked {
            body.chunked()?
        } else if let Some(length) = declared {
            body.skip(length)?
        } else {
            // Delimited by the connection's end.
            body.until_closed()?
        };
        let (read, matches) = (body.read, body.matches && body.checked == expected.len());
        Ok(Answer {
            status,
            body_bytes: read,
            declared,
            first_byte,
            last_byte: started.elapsed(),
            complete,
            matches,
            closes,
        })
    }
}

/// Status, `Content-Length`, chunked, `Connection: close`.
fn read_head(reader: &mut impl BufRead) -> io::Result<(u16, Option<u64>, bool, bool)> {
    let invalid = |what: String| io::Error::new(io::ErrorKind::InvalidData, what);
    let status_line = read_line(reader)?;
    let status = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse::<u16>().ok())
        .filter(|_| status_line.starts_with("HTTP/1."))
        .ok_or_else(|| invalid(format!("bad status line: {status_line:?}")))?;
    let (mut length, mut chunked, mut closes) = (None, false, status_line.starts_with("HTTP/1.0"));
    loop {
        let line = read_line(reader)?;
        if line.is_empty() {
            break;
        }
        let (name, value) = line
            .split_once(':')
            .ok_or_else(|| invalid(format!("bad header line: {line:?}")))?;
        let value = value.trim().to_ascii_lowercase();
        match name.trim().to_ascii_lowercase().as_str() {
            "content-length" => {
                length = Some(
                    value
                        .parse()
                        .map_err(|_| invalid(format!("bad content-length: {value:?}")))?,
                );
            }
            "transfer-encoding" => chunked = value.contains("chunked"),
            "connection" => closes = value.contains("close"),
            _ => {}
        }
    }
    Ok((status, length, chunked, closes))
}

struct Body<'a, R> {
    reader: &'a mut R,
    expected: &'a [u8],
    checked: usize,
    matches: bool,
    read: u64,
    deadline: Option<Instant>,
}

impl<R: BufRead> Body<'_, R> {
    fn late(&self) -> bool {
        self.deadline.is_some_and(|d| Instant::now() >= d)
    }

    /// Reads and drops `n` body bytes; false if the deadline came first.
    fn skip(&mut self, mut n: u64) -> io::Result<bool> {
        while n > 0 {
            if self.late() {
                return Ok(false);
            }
            let buffer = self.reader.fill_buf()?;
            if buffer.is_empty() {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
            let take = buffer.len().min(usize::try_from(n).unwrap_or(usize::MAX));
            if self.checked < self.expected.len() {
                let want = &self.expected[self.checked..];
                let k = want.len().min(take);
                self.matches &= buffer[..k] == want[..k];
                self.checked += k;
            }
            self.reader.consume(take);
            n -= take as u64;
            self.read += take as u64;
        }
        Ok(true)
    }

    fn chunked(&mut self) -> io::Result<bool> {
        loop {
            let line = read_line(self.reader)?;
            let size = u64::from_str_radix(line.split(';').next().unwrap_or("").trim(), 16)
                .map_err(|_| {
                    io::Error::new(io::ErrorKind::InvalidData, format!("bad chunk: {line:?}"))
                })?;
            if size == 0 {
                while !read_line(self.reader)?.is_empty() {}
                return Ok(true);
            }
            if !self.skip(size)? {
                return Ok(false);
            }
            read_line(self.reader)?;
        }
    }

    fn until_closed(&mut self) -> io::Result<bool> {
        loop {
            if self.late() {
                return Ok(false);
            }
            if self.reader.fill_buf()?.is_empty() {
                return Ok(true);
            }
            let n = self.reader.fill_buf()?.len() as u64;
            self.skip(n)?;
        }
    }
}

/// The path of a target (without its query).
fn path_of(target: &str) -> &str {
    target.split('?').next().unwrap_or(target)
}

/// One cold GET on a connection of its own: what the cold scenario times.
/// `size` is the object's length; the answer must be a 200 of that length
/// starting with the origin's bytes.
pub fn fetch(addr: &str, target: &str, size: u64) -> anyhow::Result<Answer> {
    let pattern = servers::pattern();
    let expected = servers::large_bytes(&pattern, path_of(target), 0, CHECKED.min(size as usize));
    let answer = Stream::open(addr)?.get(target, None, &expected, None)?;
    if answer.status != 200 || answer.body_bytes != size || !answer.matches {
        anyhow::bail!(
            "{addr}{target}: status {}, {} of {size} bytes, {}",
            answer.status,
            answer.body_bytes,
            if answer.matches {
                "bytes as expected"
            } else {
                "WRONG bytes"
            }
        );
    }
    Ok(answer)
}

/// A load of large GETs.
#[derive(Debug, Clone)]
pub struct Load {
    pub addr: String,
    /// A large object's target (path and `?size=`).
    pub target: String,
    /// The object's length.
    pub size: u64,
    pub connections: usize,
    pub duration: Duration,
    /// Each request a random `range`-aligned range of this many bytes
    /// (`None`: the whole object).
    pub range: Option<u64>,
    /// Seeds the ranges (each connection a stream of its own).
    pub seed: u64,
}

/// SplitMix64: a seeded stream of 64-bit numbers.
pub fn splitmix(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The `n`th range of connection `connection`'s stream: `(start, last)`,
/// aligned to `len`, inside an object of `size` bytes.
pub fn aligned_range(state: &mut u64, size: u64, len: u64) -> (u64, u64) {
    let slots = (size / len).max(1);
    let start = splitmix(state) % slots * len;
    (start, (start + len).min(size) - 1)
}

#[derive(Default)]
struct Tally {
    latencies_us: Vec<f64>,
    bytes: u64,
    errors: u64,
    wrong: u64,
}

fn connection(load: &Load, index: usize, pattern: &[u8], start: Instant) -> Tally {
    let deadline = start + load.duration;
    let path = path_of(&load.target);
    let mut state = load.seed.wrapping_mul(1000).wrapping_add(index as u64);
    let mut tally = Tally::default();
    let mut stream = None;
    while Instant::now() < deadline {
        let range = load
            .range
            .map(|len| aligned_range(&mut state, load.size, len));
        let (from, length) = match range {
            Some((start, last)) => (start, last - start + 1),
            None => (0, load.size),
        };
        let expected = servers::large_bytes(pattern, path, from, CHECKED.min(length as usize));
        let conn = match stream.as_mut() {
            Some(conn) => conn,
            None => match Stream::open(&load.addr) {
                Ok(conn) => stream.insert(conn),
                Err(_) => {
                    tally.errors += 1;
                    thread::sleep(Duration::from_millis(10));
                    continue;
                }
            },
        };
        match conn.get(&load.target, range, &expected, Some(deadline)) {
            Ok(answer) => {
                tally.bytes += answer.body_bytes;
                if !answer.complete {
                    break;
                }
                tally
                    .latencies_us
                    .push(answer.last_byte.as_secs_f64() * 1e6);
                let want = if range.is_some() { 206 } else { 200 };
                if answer.status != want || answer.body_bytes != length || !answer.matches {
                    tally.wrong += 1;
                }
                if answer.closes {
                    stream = None;
                }
            }
            Err(_) => {
                tally.errors += 1;
                stream = None;
            }
        }
    }
    tally
}

/// The value at `p` (0–100) of sorted `values`.
fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = (p / 100.0 * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// Runs `load` and sums it up as wrk would: completed requests, body bytes
/// read within the duration (parts of unfinished answers included), wrong
/// answers (status, length or bytes) as `non2xx`, latencies to the last byte.
pub fn run(load: &Load) -> WrkSummary {
    let pattern: Arc<[u8]> = servers::pattern().to_vec().into();
    let start = Instant::now();
    let tallies: Vec<Tally> = thread::scope(|scope| {
        let handles: Vec<_> = (0..load.connections)
            .map(|i| {
                let pattern = pattern.clone();
                scope.spawn(move || connection(load, i, &pattern, start))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("a load thread panicked"))
            .collect()
    });
    let mut latencies: Vec<f64> = tallies
        .iter()
        .flat_map(|t| t.latencies_us.iter().copied())
        .collect();
    latencies.sort_by(f64::total_cmp);
    let mean = if latencies.is_empty() {
        0.0
    } else {
        latencies.iter().sum::<f64>() / latencies.len() as f64
    };
    WrkSummary {
        requests: latencies.len() as u64,
        duration_us: load.duration.as_micros() as u64,
        bytes: tallies.iter().map(|t| t.bytes).sum(),
        errors: tallies.iter().map(|t| t.errors).sum(),
        non2xx: tallies.iter().map(|t| t.wrong).sum(),
        p50_us: percentile(&latencies, 50.0),
        p90_us: percentile(&latencies, 90.0),
        p99_us: percentile(&latencies, 99.0),
        max_us: latencies.last().copied().unwrap_or(0.0),
        mean_us: mean,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_are_aligned_seeded_and_inside() {
        let size = 10 << 20;
        let mut a = 7;
        let mut b = 7;
        for _ in 0..1000 {
            let (start, last) = aligned_range(&mut a, size, 1 << 20);
            assert_eq!(start % (1 << 20), 0);
            assert_eq!(last - start + 1, 1 << 20);
            assert!(last < size);
            assert_eq!((start, last), aligned_range(&mut b, size, 1 << 20));
        }
        let mut c = 8;
        let firsts: Vec<_> = (0..20)
            .map(|_| aligned_range(&mut c, size, 1 << 20))
            .collect();
        let mut d = 7;
        let others: Vec<_> = (0..20)
            .map(|_| aligned_range(&mut d, size, 1 << 20))
            .collect();
        assert_ne!(firsts, others);
    }

    #[test]
    fn percentiles_of_sorted_values() {
        let values: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&values, 50.0), 50.0);
        assert_eq!(percentile(&values, 99.0), 99.0);
        assert_eq!(percentile(&values, 100.0), 100.0);
        assert_eq!(percentile(&[], 50.0), 0.0);
    }

    fn body_of(wire: &[u8], expected: &[u8], deadline: Option<Instant>) -> (bool, u64, bool) {
        let mut reader = BufReader::new(wire);
        let (_, length, chunked, _) = read_head(&mut reader).unwrap();
        let mut body = Body {
            reader: &mut reader,
            expected,
            checked: 0,
            matches: true,
            read: 0,
            deadline,
        };
        let complete = if chunked {
            body.chunked().unwrap()
        } else {
            body.skip(length.unwrap()).unwrap()
        };
        (complete, body.read, body.matches)
    }

    #[test]
    fn bodies_are_counted_and_checked() {
        let wire = b"HTTP/1.1 206 Partial\r\nContent-Length: 5\r\n\r\nhello";
        assert_eq!(body_of(wire, b"he", None), (true, 5, true));
        assert_eq!(body_of(wire, b"ha", None), (true, 5, false));
        let chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nhel\r\n2\r\nlo\r\n0\r\n\r\n";
        assert_eq!(body_of(chunked, b"hello", None), (true, 5, true));
        let past = Some(Instant::now() - Duration::from_secs(1));
        assert_eq!(body_of(wire, b"he", past), (false, 0, true));
    }
}
