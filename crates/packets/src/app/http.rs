//! HTTP/1.x (tshark's `packet-http.c` and `req_resp_hdrs.c`): the request line, the
//! Host, Referer and Content-Length headers, responses, and the body as `http.file_data`
//! (de-chunked and decompressed).
//!
//! Reassembly follows `req_resp_hdrs_do_reassembly`: the headers up to their empty line,
//! then the body by Content-Length, or chunk by chunk, or for a response with neither
//! (other than 1xx, 204, 304 or a reply to HEAD) up to the sender's FIN.

use std::io::Read;

use super::{AppState, Col, Dispatch, Tvb, ascii};
use crate::reassembly::{Desegment, More};

/// Most bytes a decompressed body may take (tshark has no such bound; a body past it is
/// shown compressed, as tshark shows a body it cannot decompress).
const MAX_INFLATED: u64 = 64 << 20;

/// HTTP's per-conversation state: the latest request's method (a reply to HEAD has no
/// body).
#[derive(Debug, Default)]
pub(super) struct Conv {
    method: Option<String>,
    /// A whole request or response header block was read in this conversation (tshark's
    /// `have_seen_http`).
    seen: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Request,
    Response,
    Notification,
}

/// The HTTP heuristic over TCP: a first line that ends with or starts with `HTTP/1.1`
/// (or `HTTP/1.0`).
pub(super) fn heuristic(tvb: Tvb<'_>) -> bool {
    let Some((len, _)) = find_line_end(tvb.data, 0, true) else {
        return false;
    };
    let line = &tvb.data[..len];
    let token = |s: &[u8]| {
        s.len() >= 8
            && (s[..8].eq_ignore_ascii_case(b"HTTP/1.1")
                || s[..8].eq_ignore_ascii_case(b"HTTP/1.0"))
    };
    len >= 8 && (token(&line[len - 8..]) || token(line))
}

/// tshark's `tvb_find_line_end` from `at`: the line's length and where the next starts.
/// A line ends at CRLF, LF or a lone CR; with `desegment`, a line with no end (or a CR
/// that may be a CRLF cut in two) is `None`, else it runs to the end of the data.
fn find_line_end(data: &[u8], at: usize, desegment: bool) -> Option<(usize, usize)> {
    let rest = data.get(at..)?;
    match memchr::memchr2(b'\r', b'\n', rest) {
        None => (!desegment).then_some((rest.len(), data.len())),
        Some(i) if rest[i] == b'\n' => Some((i, at + i + 1)),
        Some(i) => match rest.get(i + 1) {
            Some(b'\n') => Some((i, at + i + 2)),
            Some(_) => Some((i, at + i + 1)),
            None if desegment => None,
            None => Some((i, at + i + 1)),
        },
    }
}

/// Whether a first line is a request, a response or a notification, and the method.
fn classify(line: &[u8]) -> Option<(Kind, &[u8])> {
    let data = line.strip_prefix(b"M-").unwrap_or(line);
    if data.starts_with(b"HTTP/") || data.starts_with(b"ICY") {
        return Some((Kind::Response, &[]));
    }
    let n = data.iter().position(|&b| b == b' ').unwrap_or(data.len());
    let m = &data[..n];
    let request: &[&[u8]] = &[
        b"GET",
        b"PUT",
        b"COPY",
        b"HEAD",
        b"LOCK",
        b"MOVE",
        b"POLL",
        b"POST",
        b"BCOPY",
        b"BMOVE",
        b"MKCOL",
        b"TRACE",
        b"PATCH",
        b"LABEL",
        b"MERGE",
        b"DELETE",
        b"SEARCH",
        b"UNLOCK",
        b"REPORT",
        b"UPDATE",
        b"BDELETE",
        b"CONNECT",
        b"OPTIONS",
        b"CHECKIN",
        b"PROPFIND",
        b"CHECKOUT",
        b"CCM_POST",
        b"PROPPATCH",
        b"BPROPFIND",
        b"BPROPPATCH",
        b"UNCHECKOUT",
        b"MKACTIVITY",
        b"MKWORKSPACE",
        b"RPC_CONNECT",
        b"RPC_IN_DATA",
        b"RPC_OUT_DATA",
        b"VERSION-CONTROL",
        b"BASELINE-CONTROL",
    ];
    if request.contains(&m) {
        return Some((Kind::Request, m));
    }
    if [&b"NOTIFY"[..], b"SUBSCRIBE", b"UNSUBSCRIBE"].contains(&m) {
        return Some((Kind::Notification, m));
    }
    if m == b"ICY" {
        return Some((Kind::Response, &[]));
    }
    None
}

/// A token up to a blank, CR or LF, and where the next one starts (blanks skipped).
fn token(line: &[u8]) -> (&[u8], &[u8]) {
    let n = line
        .iter()
        .position(|&b| b == b' ' || b == b'\r' || b == b'\n')
        .unwrap_or(line.len());
    let mut rest = &line[n..];
    while let [b' ', tail @ ..] = rest {
        rest = tail;
    }
    (&line[..n], rest)
}

/// C's `strtoll(s, &end, base)` with nothing after the number allowed.
fn strtoll_whole(s: &[u8]) -> Option<i64> {
    let s = s.trim_ascii_start();
    let (neg, digits) = match s {
        [b'-', r @ ..] => (true, r),
        [b'+', r @ ..] => (false, r),
        r => (false, r),
    };
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let v: i64 = std::str::from_utf8(digits).ok()?.parse().ok()?;
    Some(if neg { -v } else { v })
}

/// A Content-Length value as tshark takes it: a whole non-negative decimal number.
fn content_length_value(value: &[u8]) -> Option<i64> {
    strtoll_whole(value).filter(|n| *n >= 0)
}

/// `sscanf(s, "%x")` into an unsigned int.
fn scanf_x(s: &[u8]) -> Option<u32> {
    let s = s.trim_ascii_start();
    let s = match s {
        [b'0', b'x' | b'X', r @ ..] if r.first().is_some_and(u8::is_ascii_hexdigit) => r,
        r => r,
    };
    let n = s.iter().take_while(|b| b.is_ascii_hexdigit()).count();
    if n == 0 {
        return None;
    }
    let mut v: u32 = 0;
    for &b in &s[..n] {
        v = v.wrapping_mul(16).wrapping_add(char::from(b).to_digit(16)?);
    }
    Some(v)
}

fn more(offset: usize) -> Desegment {
    Desegment::More {
        offset,
        more: More::OneMoreSegment,
    }
}

/// `req_resp_hdrs_do_reassembly` for the message at `offset`: `None` when it is all
/// there, else what to ask TCP for.
fn reassembly(
    tvb: Tvb<'_>,
    offset: usize,
    can_desegment: bool,
    body: bool,
    until_fin: bool,
) -> Option<Desegment> {
    if !can_desegment {
        return None;
    }
    let data = tvb.data;
    let mut next = offset;
    let mut content_length: Option<i64> = None;
    let mut chunked = false;
    loop {
        if tvb.reported <= next {
            return Some(more(offset));
        }
        let Some((len, after)) = find_line_end(data, next, true) else {
            return Some(more(offset));
        };
        let line = &data[next..next + len];
        next = after;
        if len == 0 {
            break;
        }
        if !body || !matches!(line[0], b'c' | b'C' | b't' | b'T') {
            continue;
        }
        if line.len() >= 15 && line[..15].eq_ignore_ascii_case(b"Content-Length:") {
            if let Some(n) = content_length_value(&line[15..]) {
                content_length = Some(n);
            }
        } else if line.len() >= 18 && line[..18].eq_ignore_ascii_case(b"Transfer-Encoding:") {
            let value = line[18..].to_ascii_lowercase();
            if value.windows(7).any(|w| w == b"chunked") {
                chunked = true;
            }
        }
    }
    if !body {
        return None;
    }
    if chunked {
        loop {
            if tvb.reported <= next {
                return Some(more(offset));
            }
            let Some((len, after)) = find_line_end(data, next, true) else {
                return Some(more(offset));
            };
            let line = &data[next..next + len];
            let line = line.split(|&b| b == b';').next().unwrap_or(&[]);
            let size = scanf_x(line)?;
            if size > 1 << 31 {
                return None;
            }
            if size == 0 {
                return match find_line_end(data, after, true) {
                    None => Some(more(offset)),
                    Some(_) => None,
                };
            }
            let remaining = tvb.reported - after;
            if remaining > size as usize {
                next = after + size as usize + 2;
            } else {
                return Some(more(offset));
            }
        }
    } else if let Some(n) = content_length {
        let n = usize::try_from(n).unwrap_or(usize::MAX);
        if data.len().saturating_sub(next) < n {
            let captured = data.len().saturating_sub(next);
            return Some(Desegment::More {
                offset,
                more: More::Bytes(u32::try_from(n - captured).unwrap_or(u32::MAX)),
            });
        }
    } else if until_fin {
        return Some(Desegment::More {
            offset,
            more: More::UntilFin,
        });
    }
    None
}

/// The HTTP messages in `tvb`.
pub(super) fn dissect(
    d: &mut Dispatch<'_>,
    state: &mut AppState,
    tvb: Tvb<'_>,
    can_desegment: bool,
) -> Desegment {
    let mut offset = 0;
    while offset < tvb.reported {
        match message(d, state, tvb, offset, can_desegment) {
            Step::Consumed(n) => offset += n.max(1),
            Step::Desegment(r) => return r,
            Step::Stop => break,
        }
    }
    Desegment::Done
}

enum Step {
    Consumed(usize),
    Desegment(Desegment),
    Stop,
}

/// How a line of a message reads (`dissect_http_message`'s line loop).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Line {
    /// A header: token characters up to the colon at this index.
    Header(usize),
    /// A separator before any colon: not HTTP.
    NotHttp,
    /// Printable token characters and no colon (or a control character before one).
    Unknown,
}

fn line_kind(line: &[u8]) -> Line {
    for (i, &c) in line.iter().enumerate() {
        if !(0x20..0x7f).contains(&c) {
            return Line::Unknown;
        }
        match c {
            b':' => return Line::Header(i),
            b'(' | b')' | b'<' | b'>' | b'@' | b',' | b';' | b'\\' | b'"' | b'/' | b'[' | b']'
            | b'?' | b'=' | b'{' | b'}' | b' ' => return Line::NotHttp,
            _ => {}
        }
    }
    Line::Unknown
}

/// A response's status code: the second token's first three characters, if digits.
fn status_code(line: &[u8]) -> u32 {
    let (_, rest) = token(line);
    let (code, _) = token(rest);
    match code.get(..3) {
        Some(c) if c.iter().all(u8::is_ascii_digit) => {
            c.iter().fold(0, |a, &b| a * 10 + u32::from(b - b'0'))
        }
        _ => 0,
    }
}

/// One HTTP message at `offset` (`dissect_http_message`).
fn message(
    d: &mut Dispatch<'_>,
    state: &mut AppState,
    tvb: Tvb<'_>,
    offset: usize,
    can_desegment: bool,
) -> Step {
    let data = tvb.data;
    let mut offset = offset;
    // A leading CRLF is skipped.
    if tvb.reported.saturating_sub(offset) > 3
        && data.get(offset..).is_some_and(|r| r.starts_with(b"\r\n"))
    {
        offset += 2;
    }
    let Some(&first_byte) = data.get(offset) else {
        return Step::Stop;
    };
    // Binary data: at most a continuation, with no fields.
    if !(0x20..0x7f).contains(&first_byte) {
        return Step::Stop;
    }
    let first = match find_line_end(data, offset, true) {
        Some(f) => f,
        None => {
            if let Some(r) = reassembly(tvb, offset, can_desegment, false, false) {
                return Step::Desegment(r);
            }
            (data.len() - offset, data.len())
        }
    };
    let first_line = &data[offset..offset + first.0];
    let first_kind = classify(first_line);
    if let Some((kind, _)) = first_kind {
        let status = if kind == Kind::Response {
            status_code(first_line)
        } else {
            0
        };
        // A reply to HEAD (or a 2xx to CONNECT) has its body not waited for.
        let skip_body = kind == Kind::Response
            && (state.http.method.as_deref() == Some("HEAD")
                || (state.http.method.as_deref() == Some("CONNECT") && status / 100 == 2)
                || status / 100 == 1
                || status == 204
                || status == 304);
        if let Some(r) = reassembly(
            tvb,
            offset,
            can_desegment,
            !skip_body,
            kind == Kind::Response,
        ) {
            return Step::Desegment(r);
        }
    } else if !state.http.seen {
        // Not known to be HTTP: no fields.
        return Step::Stop;
    }
    let f = &mut *d.fields;
    // The lines: request or response line, headers, up to the blank line.
    let mut kind: Option<Kind> = None;
    let mut method: Vec<u8> = Vec::new();
    let mut status = 0u32;
    let mut uri: Option<String> = None;
    let mut host: Option<String> = None;
    let mut content_length: Option<i64> = None;
    let mut chunked = false;
    let mut encoding: Option<Vec<u8>> = None;
    let mut saw = false;
    let mut at = offset;
    while at < data.len() {
        let Some((len, next)) = find_line_end(data, at, false) else {
            break;
        };
        let line = &data[at..at + len];
        if let Some((k, m)) = classify(line) {
            kind = Some(k);
            saw = true;
            match k {
                Kind::Request | Kind::Notification => {
                    state.http.method = Some(String::from_utf8_lossy(m).into_owned());
                    method = m.to_vec();
                    let (m, mut rest) = token(line);
                    // Two blanks after the method mean an empty URI: back onto the second.
                    let skipped = line.len() - m.len() - rest.len();
                    if skipped >= 2 && line[line.len() - rest.len() - 2..].starts_with(b"  ") {
                        rest = &line[line.len() - rest.len() - 1..];
                    }
                    if !m.is_empty() {
                        f.set(Col::HttpMethod, || ascii(m));
                        let (u, rest) = token(rest);
                        let u_text = ascii(u);
                        if let Some(q) = u_text.find('?') {
                            let query = u_text[q + 1..].to_string();
                            f.set(Col::HttpQuery, || query);
                        }
                        uri = Some(u_text);
                        f.set(Col::HttpVersion, || ascii(rest));
                    }
                }
                Kind::Response => status = status_code(line),
            }
            at = next;
            continue;
        }
        if len == 0 {
            at = next;
            break;
        }
        match line_kind(line) {
            Line::Header(colon) => {
                saw = true;
                let name = &line[..colon];
                let mut value = &line[colon + 1..];
                while let [b' ' | b'\t', rest @ ..] = value {
                    value = rest;
                }
                if name.eq_ignore_ascii_case(b"Host") {
                    host = Some(ascii(value));
                } else if name.eq_ignore_ascii_case(b"Referer") {
                    f.set(Col::HttpReferer, || ascii(value));
                } else if name.eq_ignore_ascii_case(b"Content-Length") {
                    if let Some(n) = content_length_value(value) {
                        content_length = Some(n);
                        f.set(Col::HttpContentLength, || n.to_string());
                    }
                } else if name.eq_ignore_ascii_case(b"Transfer-Encoding") {
                    chunked = value.eq_ignore_ascii_case(b"chunked");
                } else if name.eq_ignore_ascii_case(b"Content-Encoding") {
                    encoding = Some(value.to_vec());
                }
                at = next;
            }
            Line::NotHttp => break,
            Line::Unknown => {
                // After a request, response or header line, a line running to the end
                // of the data is taken for a header cut short: tshark's exception ends
                // the message here.
                if saw && at + len + 1 > data.len() {
                    return Step::Stop;
                }
                break;
            }
        }
    }
    // A request or response read to here is remembered (tshark's `push_req` and
    // `push_res`; a message cut short above is not).
    if matches!(kind, Some(Kind::Request | Kind::Response)) {
        state.http.seen = true;
    }
    if kind == Some(Kind::Response) {
        f.set(Col::HttpResponse, || "1".into());
    }
    if let (Some(u), Some(h)) = (&uri, &host) {
        let lower = u.to_ascii_lowercase();
        let full = if lower.starts_with("http://")
            || lower.starts_with("https://")
            || method.eq_ignore_ascii_case(b"CONNECT")
        {
            u.clone()
        } else {
            format!("http://{}{}", h.trim(), u)
        };
        f.set(Col::HttpFullUri, || full);
    }
    // The body.
    let remaining = tvb.reported.saturating_sub(at);
    let captured = data.len().saturating_sub(at);
    let body_len = match (content_length, chunked) {
        (Some(n), false) => remaining.min(usize::try_from(n).unwrap_or(usize::MAX)),
        _ => match kind {
            Some(Kind::Request) if !chunked => 0,
            Some(Kind::Response) if status / 100 == 1 || status == 204 || status == 304 => 0,
            _ => remaining,
        },
    };
    if body_len > 0 {
        let raw = &data[at..at + body_len.min(captured)];
        let mut body: Option<Vec<u8>> = None;
        let mut shown = true;
        if chunked {
            match dechunk(raw) {
                Some(b) if !b.is_empty() => body = Some(b),
                _ => shown = false,
            }
        }
        if shown {
            let bytes = body.as_deref().unwrap_or(raw);
            let inflated = encoding.as_deref().and_then(|e| inflate(e, bytes));
            let bytes = inflated.as_deref().unwrap_or(bytes);
            f.set(Col::HttpFileData, || ascii(bytes));
        }
    }
    Step::Consumed(at - offset + body_len)
}

/// The chunks of a chunked body joined (tshark's `chunked_encoding_dissector`); `None`
/// when not one chunk could be read.
fn dechunk(raw: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    let mut at = 0;
    while at < raw.len() {
        let (len, next) = find_line_end(raw, at, false)?;
        let line = raw[at..at + len]
            .split(|&b| b == b';')
            .next()
            .unwrap_or(&[]);
        let size = scanf_x(line)? as usize;
        if size == 0 {
            break;
        }
        let chunk = raw.get(next..next.checked_add(size)?)?;
        out.extend_from_slice(chunk);
        at = next + size;
        // The CRLF after the chunk's data.
        if let Some((_, n)) = find_line_end(raw, at, false) {
            at = n;
        }
    }
    Some(out)
}

/// A gzip or deflate body decompressed, `None` if it is not (or does not decompress).
fn inflate(encoding: &[u8], body: &[u8]) -> Option<Vec<u8>> {
    let e = encoding.to_ascii_lowercase();
    let mut out = Vec::new();
    let read = match e.as_slice() {
        b"gzip" | b"x-gzip" => flate2::read::GzDecoder::new(body)
            .take(MAX_INFLATED)
            .read_to_end(&mut out),
        b"deflate" | b"x-deflate" => {
            let zlib = flate2::read::ZlibDecoder::new(body)
                .take(MAX_INFLATED)
                .read_to_end(&mut out);
            if zlib.is_err() {
                out.clear();
                flate2::read::DeflateDecoder::new(body)
                    .take(MAX_INFLATED)
                    .read_to_end(&mut out)
            } else {
                zlib
            }
        }
        _ => return None,
    };
    match read {
        Ok(_) => Some(out),
        // tshark shows what decompressed before an error.
        Err(_) if !out.is_empty() => Some(out),
        Err(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_end_at_crlf_lf_or_a_lone_cr() {
        assert_eq!(find_line_end(b"ab\r\ncd", 0, true), Some((2, 4)));
        assert_eq!(find_line_end(b"ab\ncd", 0, true), Some((2, 3)));
        assert_eq!(find_line_end(b"ab\rcd", 0, true), Some((2, 3)));
        assert_eq!(find_line_end(b"ab\r", 0, true), None);
        assert_eq!(find_line_end(b"abc", 0, true), None);
        assert_eq!(find_line_end(b"abc", 0, false), Some((3, 3)));
    }

    #[test]
    fn numbers_as_c_reads_them() {
        assert_eq!(strtoll_whole(b" 179"), Some(179));
        assert_eq!(strtoll_whole(b"179 "), None);
        assert_eq!(scanf_x(b"1a2b"), Some(0x1a2b));
        assert_eq!(scanf_x(b"zz"), None);
        assert_eq!(
            dechunk(b"3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"),
            Some(b"abcde".to_vec())
        );
    }

    #[test]
    fn gzip_in_chunks() {
        use std::io::Write;
        let mut z = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        z.write_all(&b"hello gzip world ".repeat(10)).unwrap();
        let gz = z.finish().unwrap();
        let mut chunked = Vec::new();
        for c in gz.chunks(40) {
            chunked.extend(format!("{:x}\r\n", c.len()).as_bytes());
            chunked.extend(c);
            chunked.extend(b"\r\n");
        }
        chunked.extend(b"0\r\n\r\n");
        let body = dechunk(&chunked).unwrap();
        assert_eq!(body, gz);
        assert_eq!(
            inflate(b"gzip", &body).unwrap(),
            b"hello gzip world ".repeat(10)
        );
    }

    #[test]
    fn first_lines() {
        assert_eq!(
            classify(b"GET / HTTP/1.1").map(|c| c.0),
            Some(Kind::Request)
        );
        assert_eq!(
            classify(b"HTTP/1.1 200 OK").map(|c| c.0),
            Some(Kind::Response)
        );
        assert_eq!(
            classify(b"NOTIFY * HTTP/1.1").map(|c| c.0),
            Some(Kind::Notification)
        );
        assert_eq!(classify(b"get / HTTP/1.1"), None);
        assert!(heuristic(Tvb {
            data: b"FOO / HTTP/1.1\r\n",
            reported: 16
        }));
        assert!(!heuristic(Tvb {
            data: b"FOO / HTTP/2\r\n",
            reported: 14
        }));
    }
}
