//! HTTP/1.1 for a replica's `/query`, driven by the task that reads the answer: the request is
//! written and the answer read on the reading task's own socket, with no connection task and no
//! channel between the socket and the reader. A query through a pooled client crossed three
//! tasks (reader, connection, pool) for every piece of an answer, and on a small answer those
//! wake-ups cost more than the answer itself.
//!
//! Only plain `http://` replicas are served here (TLS replicas go through the general client).
//! A connection goes back to the idle pool only after its answer was read to the end; a request
//! is sent a second time only when a reused connection turned out closed before a single byte of
//! the answer arrived (the replica closed it while idle), never after.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use prometheus_client::metrics::counter::Counter;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::{Instant, timeout_at};

/// Idle connections kept per replica.
const MAX_IDLE: usize = 8;
/// Bytes asked of the socket per read.
const READ_BYTES: usize = 64 << 10;
/// The longest answer head accepted.
const MAX_HEAD_BYTES: usize = 64 << 10;
/// Headers parsed in an answer head.
const MAX_HEADERS: usize = 32;

/// Why a request got no (complete) answer.
#[derive(Debug, thiserror::Error)]
pub enum QueryHttpError {
    #[error("cannot connect to {address}: {source}")]
    Connect {
        address: String,
        source: std::io::Error,
    },
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("timed out after {0:?}")]
    TimedOut(Duration),
    #[error("the replica closed the connection before the answer was complete")]
    Closed,
    #[error("malformed answer: {0}")]
    Malformed(String),
}

/// The `/query` endpoint of one replica and its idle connections.
#[derive(Debug)]
pub struct QueryHttp {
    /// `host:port` to connect to and to send as `Host`.
    authority: String,
    /// The path of `/query` (under the URL's own path, if it has one).
    path: String,
    timeout: Duration,
    connect_timeout: Duration,
    idle: Mutex<Vec<TcpStream>>,
    counters: ConnectionCounters,
}

/// What happened to the connections of one replica, counted per request. Unregistered counters
/// (the default) count for nobody.
#[derive(Debug, Clone, Default)]
pub struct ConnectionCounters {
    /// A new connection was opened for a request.
    pub opened: Counter,
    /// A request went over a kept connection.
    pub reused: Counter,
    /// A kept connection turned out closed by the replica before the answer; the request was
    /// sent again on a new one.
    pub replaced: Counter,
}

/// An answer's status and headers, its body still to read.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: AnswerBody,
}

/// The body of an answer, read piece by piece as it arrives.
#[derive(Debug)]
pub struct AnswerBody {
    stream: Option<TcpStream>,
    /// Read from the socket, not yet handed out.
    buffer: BytesMut,
    framing: Framing,
    keep_alive: bool,
    pool: Arc<QueryHttp>,
    deadline: Instant,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    Length {
        remaining: u64,
    },
    /// Inside a chunk of `Transfer-Encoding: chunked`.
    ChunkData {
        remaining: u64,
    },
    /// Expecting the CRLF that ends a chunk's data.
    ChunkEnd,
    /// Expecting a chunk-size line.
    ChunkSize,
    /// After the last chunk: trailer lines up to an empty one.
    Trailers,
    UntilClose,
    Done,
}

impl QueryHttp {
    /// The endpoint for `base_url` (`http://host:port[/path]`), or `None` for a URL this module
    /// does not serve (TLS, or not parseable as such).
    pub fn for_url(base_url: &str, timeout: Duration, connect_timeout: Duration) -> Option<Self> {
        let parsed = url::Url::parse(base_url).ok()?;
        if parsed.scheme() != "http" || parsed.query().is_some() {
            return None;
        }
        let host = match parsed.host()? {
            url::Host::Ipv6(address) => format!("[{address}]"),
            host => host.to_string(),
        };
        let port = parsed.port_or_known_default()?;
        Some(QueryHttp {
            authority: format!("{host}:{port}"),
            path: format!("{}/query", parsed.path().trim_end_matches('/')),
            timeout,
            connect_timeout,
            idle: Mutex::new(Vec::new()),
            counters: ConnectionCounters::default(),
        })
    }

    /// Counts this replica's connections into `counters` from now on.
    pub fn counting(mut self, counters: ConnectionCounters) -> Self {
        self.counters = counters;
        self
    }

    /// POSTs a form to `/query` with the given extra header lines (`Name: value`, already
    /// validated by the caller) and returns the answer once its head has arrived.
    pub async fn post_form(
        self: &Arc<Self>,
        headers: &[(&str, &str)],
        form: &str,
    ) -> Result<Answer, QueryHttpError> {
        let deadline = Instant::now() + self.timeout;
        let request = self.request_bytes(headers, form);
        if let Some(stream) = self.take_idle() {
            self.counters.reused.inc();
            match self.exchange(stream, &request, deadline).await {
                Err(Exchange::ClosedBeforeAnswer) => self.counters.replaced.inc(),
                other => return other.map_err(Exchange::into_error),
            };
        }
        let stream = self.connect(deadline).await?;
        self.counters.opened.inc();
        self.exchange(stream, &request, deadline)
            .await
            .map_err(Exchange::into_error)
    }

    fn request_bytes(&self, headers: &[(&str, &str)], form: &str) -> Vec<u8> {
        let mut request = Vec::with_capacity(256 + form.len());
        request.extend_from_slice(b"POST ");
        request.extend_from_slice(self.path.as_bytes());
        request.extend_from_slice(b" HTTP/1.1\r\nHost: ");
        request.extend_from_slice(self.authority.as_bytes());
        request.extend_from_slice(b"\r\nContent-Type: application/x-www-form-urlencoded\r\n");
        for (name, value) in headers {
            request.extend_from_slice(name.as_bytes());
            request.extend_from_slice(b": ");
            request.extend_from_slice(value.as_bytes());
            request.extend_from_slice(b"\r\n");
        }
        request.extend_from_slice(b"Content-Length: ");
        request.extend_from_slice(itoa::Buffer::new().format(form.len()).as_bytes());
        request.extend_from_slice(b"\r\n\r\n");
        request.extend_from_slice(form.as_bytes());
        request
    }

    fn take_idle(&self) -> Option<TcpStream> {
        self.idle.lock().ok()?.pop()
    }

    fn give_back(&self, stream: TcpStream) {
        if let Ok(mut idle) = self.idle.lock()
            && idle.len() < MAX_IDLE
        {
            idle.push(stream);
        }
    }

    async fn connect(&self, deadline: Instant) -> Result<TcpStream, QueryHttpError> {
        let connect_by = deadline.min(Instant::now() + self.connect_timeout);
        let stream = timeout_at(connect_by, TcpStream::connect(&self.authority))
            .await
            .map_err(|_| QueryHttpError::TimedOut(self.connect_timeout))?
            .map_err(|source| QueryHttpError::Connect {
                address: self.authority.clone(),
                source,
            })?;
        stream.set_nodelay(true)?;
        Ok(stream)
    }

    async fn exchange(
        self: &Arc<Self>,
        mut stream: TcpStream,
        request: &[u8],
        deadline: Instant,
    ) -> Result<Answer, Exchange> {
        let timed_out = |_| Exchange::Failed(QueryHttpError::TimedOut(self.timeout));
        match timeout_at(deadline, stream.write_all(request))
            .await
            .map_err(timed_out)?
        {
            Ok(()) => {}
            Err(error) if is_closed(&error) => return Err(Exchange::ClosedBeforeAnswer),
            Err(error) => return Err(Exchange::Failed(error.into())),
        }
        let mut buffer = BytesMut::with_capacity(READ_BYTES);
        loop {
            if buffer.capacity() - buffer.len() < READ_BYTES / 4 {
                buffer.reserve(READ_BYTES);
            }
            match timeout_at(deadline, stream.read_buf(&mut buffer))
                .await
                .map_err(timed_out)?
            {
                Ok(0) if buffer.is_empty() => return Err(Exchange::ClosedBeforeAnswer),
                Ok(0) => return Err(Exchange::Failed(QueryHttpError::Closed)),
                Ok(_) => {}
                Err(error) if buffer.is_empty() && is_closed(&error) => {
                    return Err(Exchange::ClosedBeforeAnswer);
                }
                Err(error) => return Err(Exchange::Failed(error.into())),
            }
            if let Some((status, headers, head_len, framing, keep_alive)) =
                parse_head(&buffer).map_err(Exchange::Failed)?
            {
                buffer.advance(head_len);
                return Ok(Answer {
                    status,
                    headers,
                    body: AnswerBody {
                        stream: Some(stream),
                        buffer,
                        framing,
                        keep_alive,
                        pool: Arc::clone(self),
                        deadline,
                    },
                });
            }
            if buffer.len() > MAX_HEAD_BYTES {
                return Err(Exchange::Failed(QueryHttpError::Malformed(format!(
                    "no end of the answer's head in its first {MAX_HEAD_BYTES} bytes"
                ))));
            }
        }
    }
}

/// How one attempt on one connection ended, when it did not give an answer.
enum Exchange {
    /// The connection was closed before a byte of the answer: safe to send again elsewhere.
    ClosedBeforeAnswer,
    Failed(QueryHttpError),
}

impl Exchange {
    fn into_error(self) -> QueryHttpError {
        match self {
            Exchange::ClosedBeforeAnswer => QueryHttpError::Closed,
            Exchange::Failed(error) => error,
        }
    }
}

fn is_closed(error: &std::io::Error) -> bool {
    use std::io::ErrorKind::{BrokenPipe, ConnectionAborted, ConnectionReset, UnexpectedEof};
    matches!(
        error.kind(),
        BrokenPipe | ConnectionReset | ConnectionAborted | UnexpectedEof
    )
}

type Head = (u16, HeaderMap, usize, Framing, bool);

/// The answer's head if `buffer` holds all of it.
fn parse_head(buffer: &[u8]) -> Result<Option<Head>, QueryHttpError> {
    let mut raw = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut response = httparse::Response::new(&mut raw);
    let head_len = match response.parse(buffer) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(error) => return Err(QueryHttpError::Malformed(error.to_string())),
    };
    let status = response
        .code
        .ok_or_else(|| QueryHttpError::Malformed("no status code".into()))?;
    let mut headers = HeaderMap::with_capacity(response.headers.len());
    let mut framing = Framing::UntilClose;
    let mut keep_alive = response.version == Some(1);
    for header in response.headers.iter() {
        let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(header.name.as_bytes()),
            HeaderValue::from_bytes(header.value),
        ) else {
            return Err(QueryHttpError::Malformed(format!(
                "unreadable header {:?}",
                header.name
            )));
        };
        if name == reqwest::header::TRANSFER_ENCODING {
            if value
                .as_bytes()
                .rsplit(|b| *b == b',')
                .next()
                .is_some_and(|last| last.trim_ascii().eq_ignore_ascii_case(b"chunked"))
            {
                framing = Framing::ChunkSize;
            }
        } else if name == reqwest::header::CONTENT_LENGTH && framing == Framing::UntilClose {
            let remaining = std::str::from_utf8(value.as_bytes())
                .ok()
                .and_then(|text| text.trim().parse::<u64>().ok())
                .ok_or_else(|| QueryHttpError::Malformed(format!("Content-Length {value:?}")))?;
            framing = Framing::Length { remaining };
        } else if name == reqwest::header::CONNECTION {
            for token in value.as_bytes().split(|b| *b == b',') {
                let token = token.trim_ascii();
                if token.eq_ignore_ascii_case(b"close") {
                    keep_alive = false;
                } else if token.eq_ignore_ascii_case(b"keep-alive") {
                    keep_alive = true;
                }
            }
        }
        headers.append(name, value);
    }
    if status == 204 || status == 304 {
        framing = Framing::Done;
    }
    if matches!(framing, Framing::Length { remaining: 0 }) {
        framing = Framing::Done;
    }
    if framing == Framing::UntilClose {
        keep_alive = false;
    }
    Ok(Some((status, headers, head_len, framing, keep_alive)))
}

impl AnswerBody {
    /// The next piece of the body, or `None` after its end (when the connection goes back to
    /// the idle pool).
    pub async fn chunk(&mut self) -> Result<Option<Bytes>, QueryHttpError> {
        loop {
            if let Some(piece) = self.decode()? {
                return Ok(Some(piece));
            }
            if self.framing == Framing::Done {
                self.finish();
                return Ok(None);
            }
            let Some(stream) = self.stream.as_mut() else {
                return Ok(None);
            };
            if self.buffer.capacity() - self.buffer.len() < READ_BYTES / 4 {
                self.buffer.reserve(READ_BYTES);
            }
            let read = timeout_at(self.deadline, stream.read_buf(&mut self.buffer))
                .await
                .map_err(|_| QueryHttpError::TimedOut(self.pool.timeout))??;
            if read == 0 {
                self.stream = None;
                if self.framing == Framing::UntilClose {
                    self.framing = Framing::Done;
                    continue;
                }
                return Err(QueryHttpError::Closed);
            }
        }
    }

    /// The rest of the body in one piece.
    pub async fn all(mut self) -> Result<Bytes, QueryHttpError> {
        let mut whole = BytesMut::new();
        while let Some(piece) = self.chunk().await? {
            if whole.is_empty() {
                whole = BytesMut::from(piece);
            } else {
                whole.extend_from_slice(&piece);
            }
        }
        Ok(whole.freeze())
    }

    /// What the buffer holds of the body: a piece of data, or `None` when more must be read
    /// (or the body is complete).
    fn decode(&mut self) -> Result<Option<Bytes>, QueryHttpError> {
        loop {
            match self.framing {
                Framing::Done => return Ok(None),
                Framing::UntilClose => {
                    return Ok((!self.buffer.is_empty()).then(|| self.buffer.split().freeze()));
                }
                Framing::Length { remaining } | Framing::ChunkData { remaining } => {
                    if self.buffer.is_empty() {
                        return Ok(None);
                    }
                    let take = remaining.min(self.buffer.len() as u64);
                    let piece = self.buffer.split_to(take as usize).freeze();
                    let left = remaining - take;
                    self.framing = match self.framing {
                        Framing::Length { .. } if left == 0 => Framing::Done,
                        Framing::Length { .. } => Framing::Length { remaining: left },
                        _ if left == 0 => Framing::ChunkEnd,
                        _ => Framing::ChunkData { remaining: left },
                    };
                    return Ok(Some(piece));
                }
                Framing::ChunkEnd => {
                    if self.buffer.len() < 2 {
                        return Ok(None);
                    }
                    if &self.buffer[..2] != b"\r\n" {
                        return Err(QueryHttpError::Malformed(
                            "a chunk does not end in CRLF".into(),
                        ));
                    }
                    self.buffer.advance(2);
                    self.framing = Framing::ChunkSize;
                }
                Framing::ChunkSize => {
                    let Some(line) = self.take_line()? else {
                        return Ok(None);
                    };
                    let size = line
                        .split(|b| *b == b';')
                        .next()
                        .unwrap_or_default()
                        .trim_ascii();
                    let size = std::str::from_utf8(size)
                        .ok()
                        .and_then(|hex| u64::from_str_radix(hex, 16).ok())
                        .ok_or_else(|| {
                            QueryHttpError::Malformed(format!(
                                "chunk size {:?}",
                                String::from_utf8_lossy(&line)
                            ))
                        })?;
                    self.framing = if size == 0 {
                        Framing::Trailers
                    } else {
                        Framing::ChunkData { remaining: size }
                    };
                }
                Framing::Trailers => {
                    let Some(line) = self.take_line()? else {
                        return Ok(None);
                    };
                    if line.is_empty() {
                        self.framing = Framing::Done;
                    }
                }
            }
        }
    }

    /// One CRLF-terminated line (without the CRLF) off the buffer, if it holds a whole one.
    fn take_line(&mut self) -> Result<Option<Bytes>, QueryHttpError> {
        match memchr::memchr(b'\n', &self.buffer) {
            Some(at) => {
                let mut line = self.buffer.split_to(at + 1).freeze();
                line.truncate(at);
                if line.last() == Some(&b'\r') {
                    line.truncate(at - 1);
                }
                Ok(Some(line))
            }
            None if self.buffer.len() > MAX_HEAD_BYTES => Err(QueryHttpError::Malformed(
                "a chunk-size or trailer line without an end".into(),
            )),
            None => Ok(None),
        }
    }

    /// The body was read to its end: the connection can serve another request, unless the
    /// replica sent more than it announced or said it would close.
    fn finish(&mut self) {
        if let Some(stream) = self.stream.take()
            && self.keep_alive
            && self.buffer.is_empty()
        {
            self.pool.give_back(stream);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::net::TcpListener;

    /// A one-connection-at-a-time server that answers each request with the next canned
    /// answer, and counts the connections it accepted.
    async fn server(answers: Vec<&'static [u8]>) -> (String, tokio::task::JoinHandle<usize>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let handle = tokio::spawn(async move {
            let mut answers = answers.into_iter().peekable();
            let mut connections = 0;
            'accept: while let Ok((mut stream, _)) = listener.accept().await {
                connections += 1;
                loop {
                    let mut request = Vec::new();
                    let mut buf = [0u8; 4096];
                    loop {
                        let n = stream.read(&mut buf).await.unwrap_or(0);
                        if n == 0 && answers.peek().is_none() {
                            break 'accept;
                        }
                        if n == 0 {
                            continue 'accept;
                        }
                        request.extend_from_slice(&buf[..n]);
                        if let Some(end) = request.windows(4).position(|w| w == b"\r\n\r\n") {
                            let length = String::from_utf8_lossy(&request[..end])
                                .lines()
                                .find_map(|l| l.strip_prefix("Content-Length: ").map(str::to_owned))
                                .and_then(|v| v.parse::<usize>().ok())
                                .unwrap_or(0);
                            if request.len() >= end + 4 + length {
                                break;
                            }
                        }
                    }
                    let Some(answer) = answers.next() else {
                        break 'accept;
                    };
                    if answer.is_empty() {
                        // Close without answering, as a replica does with an idle connection.
                        continue 'accept;
                    }
                    stream.write_all(answer).await.unwrap();
                    if answer.windows(17).any(|w| w == b"Connection: close") {
                        continue 'accept;
                    }
                }
            }
            connections
        });
        (format!("http://{address}"), handle)
    }

    fn endpoint(url: &str) -> Arc<QueryHttp> {
        counted_endpoint(url, ConnectionCounters::default())
    }

    fn counted_endpoint(url: &str, counters: ConnectionCounters) -> Arc<QueryHttp> {
        Arc::new(
            QueryHttp::for_url(url, Duration::from_secs(5), Duration::from_secs(1))
                .unwrap()
                .counting(counters),
        )
    }

    /// (opened, reused, replaced)
    fn counted(counters: &ConnectionCounters) -> (u64, u64, u64) {
        (
            counters.opened.get(),
            counters.reused.get(),
            counters.replaced.get(),
        )
    }

    #[tokio::test]
    async fn chunked_and_sized_answers_are_read_whole_over_one_kept_connection() {
        let (url, server) = server(vec![
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n7;ext=1\r\n, world\r\n0\r\nX-Trailer: 1\r\n\r\n",
            b"HTTP/1.1 400 Bad Request\r\nContent-Length: 14\r\nX-Influxdb-Error: no\r\n\r\n{\"error\":\"no\"}",
        ])
        .await;
        let counters = ConnectionCounters::default();
        let http = counted_endpoint(&url, counters.clone());
        let answer = http
            .post_form(&[("X-Request-Id", "r1")], "q=x")
            .await
            .unwrap();
        assert_eq!(answer.status, 200);
        assert_eq!(&answer.body.all().await.unwrap()[..], b"hello, world");
        let answer = http.post_form(&[], "q=y").await.unwrap();
        assert_eq!(answer.status, 400);
        assert_eq!(answer.headers["x-influxdb-error"], "no");
        assert_eq!(&answer.body.all().await.unwrap()[..], b"{\"error\":\"no\"}");
        assert_eq!(counted(&counters), (1, 1, 0));
        drop(http);
        assert_eq!(server.await.unwrap(), 1, "both answers over one connection");
    }

    #[tokio::test]
    async fn a_kept_connection_the_replica_closed_is_replaced_once() {
        let (url, server) = server(vec![
            b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
            b"",
            b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nagain",
        ])
        .await;
        let counters = ConnectionCounters::default();
        let http = counted_endpoint(&url, counters.clone());
        let first = http.post_form(&[], "q=1").await.unwrap();
        assert_eq!(&first.body.all().await.unwrap()[..], b"ok");
        let second = http.post_form(&[], "q=2").await.unwrap();
        assert_eq!(&second.body.all().await.unwrap()[..], b"again");
        assert_eq!(counted(&counters), (2, 1, 1));
        drop(http);
        assert_eq!(server.await.unwrap(), 2);
    }

    #[tokio::test]
    async fn an_answer_cut_off_midway_is_an_error_not_a_short_body() {
        let (url, server) = server(vec![
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n5\r\nhel",
        ])
        .await;
        let http = endpoint(&url);
        let answer = http.post_form(&[], "q=1").await.unwrap();
        let error = answer.body.all().await.unwrap_err();
        assert!(matches!(error, QueryHttpError::Closed), "{error:?}");
        server.abort();
    }

    #[tokio::test]
    async fn a_closed_port_is_a_connect_error_naming_the_address() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap();
        drop(listener);
        let http = endpoint(&format!("http://{address}"));
        let error = http.post_form(&[], "q=1").await.unwrap_err();
        assert!(
            error
                .to_string()
                .starts_with(&format!("cannot connect to {address}")),
            "{error}"
        );
    }

    #[test]
    fn only_plain_http_urls_are_served_and_paths_are_kept() {
        let timeout = Duration::from_secs(1);
        assert!(QueryHttp::for_url("https://127.0.0.1:8086", timeout, timeout).is_none());
        let http = QueryHttp::for_url("http://localhost:8086/influx/", timeout, timeout).unwrap();
        assert_eq!(http.authority, "localhost:8086");
        assert_eq!(http.path, "/influx/query");
        let http = QueryHttp::for_url("http://[::1]", timeout, timeout).unwrap();
        assert_eq!(http.authority, "[::1]:80");
    }
}
