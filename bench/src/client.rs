//! A minimal blocking HTTP/1.1 client over one keep-alive connection, for
//! the purge scenario: filling a cache and timing single requests where a
//! process start (curl) would dwarf what is measured.

use std::io::{self, BufRead, BufReader, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

/// A response: status, headers (names lower-cased) and body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Reply {
    /// The first value of header `name` (lower case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// A request to send.
#[derive(Debug, Clone, Default)]
pub struct Outgoing<'a> {
    pub method: &'a str,
    pub target: &'a str,
    pub headers: &'a [(String, String)],
    pub body: &'a [u8],
}

fn invalid(what: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what.into())
}

/// The request's bytes (`Host` is `host`; a body gets a `Content-Length`).
pub fn serialize(request: &Outgoing, host: &str) -> Vec<u8> {
    let mut out = format!(
        "{} {} HTTP/1.1\r\nhost: {host}\r\n",
        request.method, request.target
    );
    for (name, value) in request.headers {
        out.push_str(&format!("{name}: {value}\r\n"));
    }
    if !request.body.is_empty() || !matches!(request.method, "GET" | "HEAD") {
        out.push_str(&format!("content-length: {}\r\n", request.body.len()));
    }
    out.push_str("\r\n");
    let mut bytes = out.into_bytes();
    bytes.extend_from_slice(request.body);
    bytes
}

pub(crate) fn read_line(reader: &mut impl BufRead) -> io::Result<String> {
    let mut line = String::new();
    if reader.read_line(&mut line)? == 0 {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "connection closed",
        ));
    }
    Ok(line.trim_end_matches(['\r', '\n']).to_owned())
}

/// Reads one response. `head` says the request was HEAD (no body follows).
/// Bodies are delimited by `Content-Length` or chunked encoding; a response
/// with neither must be a status without a body.
pub fn read_reply(reader: &mut impl BufRead, head: bool) -> io::Result<Reply> {
    let status_line = read_line(reader)?;
    let status = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse::<u16>().ok())
        .filter(|_| status_line.starts_with("HTTP/1."))
        .ok_or_else(|| invalid(format!("bad status line: {status_line:?}")))?;
    let mut headers = Vec::new();
    loop {
        let line = read_line(reader)?;
        if line.is_empty() {
            break;
        }
        let (name, value) = line
            .split_once(':')
            .ok_or_else(|| invalid(format!("bad header line: {line:?}")))?;
        headers.push((name.trim().to_ascii_lowercase(), value.trim().to_owned()));
    }
    let mut reply = Reply {
        status,
        headers,
        body: Vec::new(),
    };
    if head || status == 204 || status == 304 || (100..200).contains(&status) {
        return Ok(reply);
    }
    let chunked = reply
        .header("transfer-encoding")
        .is_some_and(|te| te.to_ascii_lowercase().contains("chunked"));
    if chunked {
        loop {
            let size_line = read_line(reader)?;
            let size = usize::from_str_radix(size_line.split(';').next().unwrap_or("").trim(), 16)
                .map_err(|_| invalid(format!("bad chunk size: {size_line:?}")))?;
            if size == 0 {
                // Trailers, then the empty line.
                while !read_line(reader)?.is_empty() {}
                break;
            }
            let start = reply.body.len();
            reply.body.resize(start + size, 0);
            reader.read_exact(&mut reply.body[start..])?;
            read_line(reader)?;
        }
    } else if let Some(length) = reply.header("content-length") {
        let length: usize = length
            .parse()
            .map_err(|_| invalid(format!("bad content-length: {length:?}")))?;
        reply.body.resize(length, 0);
        reader.read_exact(&mut reply.body)?;
    }
    Ok(reply)
}

/// One keep-alive connection.
pub struct Connection {
    addr: String,
    reader: BufReader<TcpStream>,
}

impl Connection {
    pub fn open(addr: &str) -> io::Result<Connection> {
        let stream = TcpStream::connect(addr)?;
        stream.set_nodelay(true)?;
        stream.set_read_timeout(Some(Duration::from_secs(30)))?;
        Ok(Connection {
            addr: addr.to_owned(),
            reader: BufReader::new(stream),
        })
    }

    /// Sends `request` and reads the reply; returns it with the time from
    /// the first byte written to the last byte read.
    pub fn send(&mut self, request: &Outgoing) -> io::Result<(Reply, Duration)> {
        let bytes = serialize(request, &self.addr);
        let started = Instant::now();
        self.reader.get_mut().write_all(&bytes)?;
        let reply = read_reply(&mut self.reader, request.method == "HEAD")?;
        Ok((reply, started.elapsed()))
    }

    /// `GET target`.
    pub fn get(&mut self, target: &str) -> io::Result<(Reply, Duration)> {
        self.send(&Outgoing {
            method: "GET",
            target,
            ..Outgoing::default()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serializes_requests() {
        let headers = [("authorization".to_owned(), "Bearer t".to_owned())];
        let get = serialize(
            &Outgoing {
                method: "GET",
                target: "/a?b=1",
                headers: &headers,
                body: b"",
            },
            "h:1",
        );
        assert_eq!(
            String::from_utf8(get).unwrap(),
            "GET /a?b=1 HTTP/1.1\r\nhost: h:1\r\nauthorization: Bearer t\r\n\r\n"
        );
        let post = serialize(
            &Outgoing {
                method: "POST",
                target: "/p",
                headers: &[],
                body: b"{}",
            },
            "h",
        );
        assert!(
            String::from_utf8(post)
                .unwrap()
                .ends_with("content-length: 2\r\n\r\n{}")
        );
        let ban = serialize(
            &Outgoing {
                method: "BAN",
                target: "/",
                ..Outgoing::default()
            },
            "h",
        );
        assert!(
            String::from_utf8(ban)
                .unwrap()
                .contains("content-length: 0\r\n")
        );
    }

    #[test]
    fn reads_content_length_and_keeps_the_rest() {
        let wire = b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nX-Cache: HIT\r\n\r\nabcHTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n";
        let mut reader = &wire[..];
        let first = read_reply(&mut reader, false).unwrap();
        assert_eq!(first.status, 200);
        assert_eq!(first.body, b"abc");
        assert_eq!(first.header("x-cache"), Some("HIT"));
        let second = read_reply(&mut reader, false).unwrap();
        assert_eq!((second.status, second.body.len()), (404, 0));
    }

    #[test]
    fn reads_chunked_bodies() {
        let wire = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3;x=y\r\nabc\r\na\r\n0123456789\r\n0\r\nT: 1\r\n\r\nrest";
        let mut reader = &wire[..];
        let reply = read_reply(&mut reader, false).unwrap();
        assert_eq!(reply.body, b"abc0123456789");
        assert_eq!(reader, b"rest");
    }

    #[test]
    fn head_and_bodyless_statuses() {
        let wire = b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n";
        assert!(read_reply(&mut &wire[..], true).unwrap().body.is_empty());
        let wire = b"HTTP/1.1 304 Not Modified\r\nContent-Length: 10\r\n\r\n";
        assert!(read_reply(&mut &wire[..], false).unwrap().body.is_empty());
    }

    #[test]
    fn malformed_replies_are_errors() {
        for wire in [
            &b"SMTP 220 hi\r\n\r\n"[..],
            b"HTTP/1.1 abc OK\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nno-colon\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nab",
            b"",
        ] {
            assert!(read_reply(&mut &wire[..], false).is_err(), "{wire:?}");
        }
    }
}
